"""The unlearning benchmark: a synthetic TOFU-style world, tiny models trained on it, and every method scored.

One small step per file: ``scale`` (sizes), ``models`` (train or load the target and retain models),
``splits`` (which items each step may see), ``context`` (shared state), ``eco`` (fit and score ECO), ``mc``
(multiple-choice subjects), ``table`` (rows, Markdown, figure), ``run`` (:func:`run_bench`, the steps in order).
"""
