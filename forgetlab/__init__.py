"""forgetlab: make neural networks forget, and watch them forget.

Two parts share one vocabulary (forget set, retain set, test set, and the gold-standard model never trained
on the forget set): ``forgetlab.grok`` (corrupted modular arithmetic, Doshi et al. ICLR 2024) and
``forgetlab.eco`` (embedding-corrupted prompts, Liu et al. NeurIPS 2024), judged by ``forgetlab.unlearning``.
"""

__version__ = "0.1.0"
