"""ECO: inference-time unlearning by embedding-corrupted prompts (Liu et al., NeurIPS 2024, arXiv 2406.07933).

``corruptions`` (pure masked corruptions by name), ``hooks`` (corrupt a HF model's input embeddings at prompt
positions only), ``scoring`` (teacher-forced continuation log-probs under a corruption), ``fit`` (fitting a
corruption's strength), ``select`` (choosing a corruption against never-seen entities), ``classify/`` (the flag
rule: prompt classifier, entity matcher), ``base_model`` (loading the wrapped LM), ``guard`` (``EcoGuard``),
``guard_folder`` (its saved form), ``serve/`` (the OpenAI-compatible server), ``cli``. Imports stay lazy.
"""
