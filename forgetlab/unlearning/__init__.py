"""The judge of unlearning: a synthetic TOFU-style world, tiny LMs trained on it, TOFU/MUSE metrics, fine-tuning
baselines and the benchmark that scores every method, ECO included.

``world`` (the world and its JSONL export), ``lm`` (tokenizer and model training, cached), ``metrics`` (pure
metric functions), ``scoring`` (model-side measurements), ``evaluate`` (every number of one model),
``baselines`` (GA, GD, NPO), ``bench/`` (the results table), ``cli``. It may import ``forgetlab.eco`` (the
judge imports the method); ``eco`` never imports it.
"""
