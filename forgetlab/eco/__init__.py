"""ECO: inference-time unlearning by embedding-corrupted prompts (Liu et al., NeurIPS 2024, arXiv 2406.07933).

Modules: ``corruptions`` (pure masked corruptions by name), ``hooks`` (corrupt a HF model's input embeddings at
prompt positions only), ``fit`` (zeroth-order and bracketing fits of the strength), ``guard`` (``EcoGuard``: the
guarded model, save/load), ``classifier`` (prompt and token classifiers), ``models`` (tiny causal LMs for tests
and benchmarks), ``cli`` (``forgetlab eco ...``). Imports stay lazy so ``forgetlab --help`` is fast.
"""
