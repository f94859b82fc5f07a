"""What a grok run is: :class:`TrainConfig` and the names it may use, importable without torch.

The command line builds its options from these fields (:func:`forgetlab.options.config_command`), so each
default and its help text are stated here once. Operations and activations are chosen by name from lazy
registries whose implementations live in :mod:`forgetlab.grok.data` and :mod:`forgetlab.grok.models`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import BadInput, check_choice, check_range
from ..options import setting
from ..registry import Registry

OPS: Registry[Any] = Registry("op", {"add": "forgetlab.grok.data:op_add", "sub": "forgetlab.grok.data:op_sub",
                                     "mul": "forgetlab.grok.data:op_mul", "div": "forgetlab.grok.data:op_div"})
"""Binary operations ``f(m, n, p) -> (m op n) mod p`` on tensors of residues, by name."""
ACTIVATIONS: Registry[Any] = Registry("act", {"quadratic": "forgetlab.grok.models:quadratic",
                                              "relu": "torch:relu"})
"""The hidden activation phi, by name."""
def is_prime(p: int) -> bool:
    """Trial division; p is small here."""
    if p < 2:
        return False
    k = 2
    while k * k <= p:
        if p % k == 0:
            return False
        k += 1
    return True


def check_p_op(p: int, op: str) -> None:
    """Validate the modulus and operation (division needs a prime modulus for inverses to exist)."""
    check_choice("op", op, OPS)
    if not isinstance(p, int) or isinstance(p, bool) or p < 3:
        raise BadInput("p", p, "an integer >= 3")
    if op == "div" and not is_prime(p):
        raise BadInput("p", p, "a prime number (op 'div' needs modular inverses)")


def n_pairs(p: int, op: str) -> int:
    """Number of examples: p^2, or p(p-1) for division (n = 0 excluded)."""
    return p * (p - 1) if op == "div" else p * p


LOSSES = ("mse", "ce")
MAX_DEPTH = 8
MAX_INIT_SCALE = 10.0
"""Largest ``TrainConfig.init_scale`` (inclusive): ten times the authors' start, past the scales grokking studies
vary; measured at p = 11, the Transformer's loss overflows float32 from about 100 (the MLP's stays finite at
999), and such a run would end labelled Confusion with NaN weights."""
MODELS = ("mlp", "transformer")
MATMUL_PRECISIONS = ("fp32", "bf16")
"""Allowed ``TrainConfig.matmul_precision`` values (:mod:`forgetlab.grok.precision` applies them)."""
BATCHNORM_PLACEMENTS = ("post", "pre")
"""Allowed ``TrainConfig.batchnorm_placement`` values: after or before each hidden activation."""
PARAM_GROUPS = ("standard", "mup")
"""Allowed ``TrainConfig.param_groups`` values (:func:`forgetlab.grok.transformer.param_group_scales`)."""
SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer; every grok seed is in [0, this]
SUMMARY_KEYS = ("train_acc", "test_acc", "corrupted_acc", "clean_acc", "inversion_acc", "mean_ipr",
                "weight_norm", "phase", "steps", "seconds", "n_corrupted", "n_corrupted_unchanged",
                "weight_norm_init")


@dataclass(frozen=True)
class TrainConfig:
    """One training run (defaults: the paper's Fig. 1 setting).

    ``seed`` drives initialization, dropout masks and minibatch order. ``split_seed=420`` and
    ``label_seed=0`` are the official code's fixed data seeds, so by default every run sees the paper's data
    regardless of ``seed`` (vary them to resample the data). ``log_every`` is the history granularity
    (steps); the final step is always logged.
    """

    p: int = setting(97, "Modulus.")
    op: str = setting("add", "Operation.", choices=tuple(OPS))
    alpha: float = setting(0.5, "Training fraction of all pairs, in (0, 1).")
    xi: float = setting(0.35, "Fraction of training labels corrupted, in [0, 1).")
    width: int = setting(500, "Hidden width N of the MLP (the Transformer's sizes are the paper's: d=128, "
                                 "4 heads, MLP 4d).")
    depth: int = setting(2, "MLP layers (linear maps): 2 = the paper's W phi(U e_m + V e_n); 3 = App. G's deep "
                            "MLP (one N x N hidden layer).", identity="when_set")
    act: str = setting("quadratic", "Activation: of the MLP's hidden units; of the Transformer's MLP block.",
                       choices=tuple(ACTIVATIONS))
    wd: float = setting(0.0, "AdamW weight decay.")
    init_scale: float = setting(1.0, "Factor on every initial weight matrix and embedding (not on norm layers): "
                                "1 = the authors' initialization; below 1 starts from a smaller weight norm, the "
                                "knob of Omnigrok (Liu et al. 2023) for grokking without delay.",
                                identity="when_set")
    dropout: float = setting(0.0, "Dropout rate: on each hidden pre-activation (MLP); on the embeddings, the "
                                  "attention weights and both residual branches (Transformer).")
    batchnorm: bool = setting(False, "BatchNorm in each hidden layer of the MLP (where: batchnorm_placement).")
    batchnorm_placement: str = setting("post", "Where BatchNorm sits in each hidden layer (with batchnorm): post = "
                                       "after the activation (paper Eq. 5); pre = on the pre-activation, before "
                                       "it, in every hidden layer (Ioffe and Szegedy's placement; the authors' "
                                       "fcn_norm_only normalizes so in all hidden layers but the last).",
                                       choices=BATCHNORM_PLACEMENTS, identity="when_set")
    layernorm: bool = setting(False, "LayerNorm before attention, before the MLP block and before the head "
                                     "(Transformer; the authors' if_ln).", identity="when_set")
    batch_size: int = setting(0, "Minibatch size; 0 = full batch.")
    lr: float = setting(0.01, "Learning rate.")
    steps: int = setting(500, "AdamW updates.")
    loss: str = setting("mse", "Loss.", choices=LOSSES)
    model: str = setting("mlp", "Architecture.", choices=MODELS)
    seed: int = setting(1, "Seed of initialization, dropout masks and minibatch order.")
    split_seed: int = setting(420, "Seed of the train/test split (official: 420).")
    label_seed: int = setting(0, "Seed of the corrupted labels (official: 0).")
    log_every: int = setting(10, "History granularity in steps (the last step is always logged).")
    matmul_precision: str = setting("fp32", "Precision of the matrix products: fp32 (exact) or bf16 (operands "
                                    "rounded to bfloat16, ~3e-3 relative error per product; faster only on CPUs "
                                    "with AVX-512 BF16 or AMX units and CUDA GPUs, refused elsewhere).",
                                    choices=MATMUL_PRECISIONS, identity="when_set")
    param_groups: str = setting("standard", "Transformer's AdamW parameter groups, both from the authors' code: "
                                "standard = every matrix at lr and decayed, embeddings included (their default, "
                                "timm's param_groups_weight_decay); mup = their rescale_optim: lr of qkv and o "
                                "times 1/d, fc 1/(2d), proj 1/(4d), head 1; embeddings and LayerNorm undecayed.",
                                choices=PARAM_GROUPS, identity="when_set")

    def validate(self) -> TrainConfig:
        """Return self, or raise :class:`BadInput` naming the first bad field."""
        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        check_p_op(self.p, self.op)
        check_range("alpha", self.alpha, 0.0, 1.0, lo_open=True)
        check_range("xi", self.xi, 0.0, 1.0)
        if not is_int(self.width) or self.width < 1:
            raise BadInput("width", self.width, "an integer >= 1")
        check_choice("act", self.act, ACTIVATIONS)
        check_range("wd", self.wd, 0.0, math.inf)
        check_range("init_scale", self.init_scale, 0.0, MAX_INIT_SCALE, lo_open=True, hi_open=False)
        check_range("dropout", self.dropout, 0.0, 1.0)
        if not isinstance(self.batchnorm, bool):
            raise BadInput("batchnorm", self.batchnorm, "true or false")
        check_batchnorm_placement(self.batchnorm, self.batchnorm_placement)
        check_range("lr", self.lr, 0.0, math.inf, lo_open=True)
        if not is_int(self.steps) or self.steps < 1:
            raise BadInput("steps", self.steps, "an integer >= 1")
        check_choice("loss", self.loss, LOSSES)
        check_choice("model", self.model, MODELS)
        check_choice("matmul_precision", self.matmul_precision, MATMUL_PRECISIONS)
        check_choice("param_groups", self.param_groups, PARAM_GROUPS)
        for name in ("seed", "split_seed", "label_seed"):
            if not is_int(getattr(self, name)) or not 0 <= getattr(self, name) <= SEED_MAX:
                raise BadInput(name, getattr(self, name), f"an integer in [0, {SEED_MAX}]")
        if not is_int(self.log_every) or self.log_every < 1:
            raise BadInput("log_every", self.log_every, "an integer >= 1")
        n_train = self.n_train()
        if not is_int(self.batch_size) or not 0 <= self.batch_size <= n_train:
            raise BadInput("batch_size", self.batch_size, f"an integer in [0, {n_train}] (0 = full batch)")
        if n_train < 1:
            raise BadInput("alpha", self.alpha, "a fraction leaving at least one training pair")
        if self.batchnorm and 0 < self.batch_size < 2:  # BatchNorm normalizes over the rows of a step
            raise BadInput("batch_size", self.batch_size, f"an integer in [2, {n_train}] or 0 with batchnorm")
        if self.batchnorm and n_train < 2:
            raise BadInput("alpha", self.alpha, "a fraction leaving at least two training pairs with batchnorm")
        self._validate_architecture()
        return self

    def n_train(self) -> int:
        """Training examples: ``int(alpha * P)`` of the ``P`` pairs."""
        return int(self.alpha * n_pairs(self.p, self.op))

    def _validate_architecture(self) -> None:
        """Options that belong to one architecture only: depth to the MLP, LayerNorm to the Transformer."""
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or not 2 <= self.depth <= MAX_DEPTH:
            raise BadInput("depth", self.depth, f"an integer in [2, {MAX_DEPTH}]")
        if not isinstance(self.layernorm, bool):
            raise BadInput("layernorm", self.layernorm, "true or false")
        if self.model == "transformer":
            if self.batchnorm:
                raise BadInput("batchnorm", True, "false for model 'transformer' (use layernorm)")
            if self.depth != 2:
                raise BadInput("depth", self.depth, "2 for model 'transformer' (one block, as the paper)")
            if self.width != (default := TrainConfig.__dataclass_fields__["width"].default):
                raise BadInput("width", self.width, f"{default}, the default, for model 'transformer' (its sizes "
                               "are the paper's, d = 128, 4 heads, MLP 4d; width is the MLP's)")
        elif self.layernorm:
            raise BadInput("layernorm", True, "false for model 'mlp' (use batchnorm)")
        elif self.param_groups != "standard":
            raise BadInput("param_groups", self.param_groups, "'standard' for model 'mlp' (mup is the "
                           "Transformer's)")


def check_batchnorm_placement(batchnorm: bool, placement: str) -> None:
    """Refuse (:class:`BadInput`) a placement not in :data:`BATCHNORM_PLACEMENTS`, or "pre" without BatchNorm."""
    check_choice("batchnorm_placement", placement, BATCHNORM_PLACEMENTS)
    if placement != "post" and not batchnorm:
        raise BadInput("batchnorm_placement", placement, "'post' unless batchnorm is true")


def training_notes(config: TrainConfig) -> str:
    """What a claim or table must say about how a run trained when it is not the authors' way: the initial
    scale and bf16 products (``", initial weights x 0.25, bf16 products"``; empty at the defaults)."""
    notes = f", initial weights x {config.init_scale:g}" if config.init_scale != 1.0 else ""
    return notes + (", bf16 products" if config.matmul_precision == "bf16" else "")


def paper_minibatch_steps(steps: int, batch_size: int) -> int:
    """Updates the paper runs for ``steps`` normalized steps at ``batch_size`` (official: steps*256//B)."""
    return steps * 256 // batch_size if batch_size > 0 else steps


BATCH_FIELDS = ("model", "p", "width", "depth", "act", "loss", "steps", "batchnorm", "batchnorm_placement",
                "layernorm", "batch_size", "log_every", "matmul_precision", "param_groups")
"""The fields runs of one batch share (with the number of pairs): the tensor shapes and the control flow."""


def batch_key(config: TrainConfig) -> tuple:
    """Fields that must be equal for runs to share one batch: :data:`BATCH_FIELDS` (model first) and the number
    of pairs. Everything else (op with the same pair count, alpha, xi, data seeds, seed, wd, dropout, lr,
    init_scale) may differ inside a batch.
    """
    return (*(getattr(config, f) for f in BATCH_FIELDS), n_pairs(config.p, config.op))
