"""ECO's prompt classifier and token classifier (Liu et al., NeurIPS 2024, arXiv 2406.07933, Sec. 3.1-3.2).

:class:`PromptClassifier` decides whether a prompt is about the forget target: a small head (logistic regression
or MLP) on frozen all-MiniLM-L6-v2 sentence vectors (optionally fine-tuned), with a decision threshold set on
held-out retain prompts by the split-conformal quantile, so ``P(flag | retain prompt) <= fpr`` for prompts
exchangeable with the calibration set. Long prompts are scored in overlapping windows of
``window`` = 32 word pieces every ``stride`` = 16 (the last window end-aligned) and take the maximum window score:
any run of at most 16 word pieces (a short question, and any entity name) lies whole in one window where it is
at least half the text, so benign filler in front of (or behind) it can neither push it out of view (the
upstream code truncates at 512 tokens) nor dilute it away in the mean pooling. A prompt of at most 32 word pieces
(most chat questions) is one window, i.e. scored whole. Measured (docs/benchmarks/classifier.md): with 2,000
tokens of filler before a forget question, the smallest margin over the threshold rose from 1.37 (64/32) to 2.31
(32/16) at the same cost, while a benign 2,000-token filler came closer to it (-1.03 -> -0.51). Calibration uses
the same windowed score, so the FPR bound holds for prompts like the calibration prompts; very long benign
prompts (many windows, each a chance to cross) are not covered by it: calibrate on long retain prompts if you
serve long prompts.

An optional first stage (:mod:`forgetlab.eco.ngram`) clears clearly-benign windows without running MiniLM. It only
clears, never flags, so the conformal FPR bound still holds for the cascade; the misses it adds are bounded by its
own conformal rule on held-out forget prompts and are measured in ``report``.

:class:`TokenClassifier` picks the characters of a flagged prompt to corrupt (entity-level corruption): known
forget entities matched exactly, case-insensitively and with one edit per long name part; map the character
spans to any LM's tokens with :func:`token_mask_from_spans`.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BadInput, ForgetlabError, check_choice, check_range
from ..runs import (
    atomic_write_json,
    folder_checksums,
    iter_jsonl,
    load_tensors,
    prepare_out_dir,
    read_json,
    run_record,
    save_tensors,
    verify_checksums,
)
from .conformal import conformal_lower_threshold, conformal_pac_threshold, conformal_upper_threshold
from .encoder import DEFAULT_ENCODER, Encoder, token_windows
from .ngram import NgramModel, single_thread

PROMPT_FIELDS = ("prompt", "text", "question")
FORMAT_PROMPT = "forgetlab.eco.PromptClassifier"
FORMAT_TOKEN = "forgetlab.eco.TokenClassifier"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------------------------
# JSONL input


def load_prompts(path: str | Path, field: str | None = None) -> list[str]:
    """Read one prompt per JSONL line from ``field`` (``prompt``, ``text`` or ``question``; None: the first of
    these present in line 1). Blank lines are skipped; every error names the file and line."""
    if field is not None:
        check_choice("field", field, PROMPT_FIELDS)
    path = Path(path)
    prompts: list[str] = []
    for lineno, obj in iter_jsonl(path):
        if field is None:
            field = next((f for f in PROMPT_FIELDS if f in obj), None)
            if field is None:
                raise ForgetlabError(f"{path}: line {lineno}: missing field (one of "
                                     f"{', '.join(PROMPT_FIELDS)}); has {', '.join(sorted(obj)) or 'none'}")
        if field not in obj:
            raise ForgetlabError(f"{path}: line {lineno}: missing field {field!r}")
        value = obj[field]
        if not isinstance(value, str) or not value.strip():
            raise ForgetlabError(f"{path}: line {lineno}: field {field!r} must be a non-empty string, "
                                 f"got {value!r}"[:300])
        prompts.append(value)
    if not prompts:
        raise ForgetlabError(f"{path}: empty file (expected one JSON object per line with a "
                             f"{field or '/'.join(PROMPT_FIELDS)} field)")
    return prompts


# ----------------------------------------------------------------------------------------------------------------
# heads


HEADS: dict[str, Callable[[int, int, torch.Generator], torch.nn.Module]] = {}


def register_head(name: str) -> Callable:
    """Decorator: register a head factory ``(dim, hidden, generator) -> module mapping [B, dim] -> [B, 1]``."""

    def deco(fn: Callable) -> Callable:
        HEADS[name] = fn
        return fn

    return deco


@register_head("logreg")
def _logreg(dim: int, hidden: int, generator: torch.Generator) -> torch.nn.Module:
    head = torch.nn.Linear(dim, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


@register_head("mlp")
def _mlp(dim: int, hidden: int, generator: torch.Generator) -> torch.nn.Module:
    head = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))
    for layer in (head[0], head[2]):
        bound = 1.0 / math.sqrt(layer.in_features)
        torch.nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
        torch.nn.init.zeros_(layer.bias)
    return head


def _train_head(head: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, l2: float, steps: int) -> None:
    """Full-batch, class-balanced BCE + L2 on weights, minimized by scipy's L-BFGS-B (deterministic).

    ``x [N, d]``, ``y [N]`` in {0, 1}. scipy's optimizer, not ``torch.optim.LBFGS``: the latter spends its time
    in thousands of tiny tensor ops, which crawl on a busy shared CPU.
    """
    import scipy.optimize
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    pos = y.sum().clamp_min(1.0)
    neg = (len(y) - y.sum()).clamp_min(1.0)
    w = torch.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg)).double()
    head.double()
    params = list(head.parameters())
    xd, yd = x.double(), y.double()

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        vector_to_parameters(torch.from_numpy(theta), params)
        for p in params:
            p.grad = None
        logits = head(xd).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yd, weight=w)
        loss = loss + 0.5 * l2 * sum((p * p).sum() for n, p in head.named_parameters() if "weight" in n)
        loss.backward()
        grad = parameters_to_vector([p.grad for p in params])
        return float(loss.detach()), grad.numpy().copy()

    with torch.enable_grad(), single_thread():
        theta0 = parameters_to_vector(params).detach().numpy().copy()
        res = scipy.optimize.minimize(loss_grad, theta0, jac=True, method="L-BFGS-B",
                                      options={"maxiter": steps})
        vector_to_parameters(torch.from_numpy(res.x), params)
    head.float()
    for p in head.parameters():
        p.grad = None


# ----------------------------------------------------------------------------------------------------------------
# prompt classifier


@dataclass
class ClassifierConfig:
    """Everything that defines a fitted prompt classifier besides its weights."""

    encoder: str = DEFAULT_ENCODER
    head: str = "logreg"
    hidden: int = 256
    l2: float = 1e-3
    window: int = 32
    stride: int = 16
    fpr: float = 0.01
    calibration: str = "marginal"
    delta: float = 0.1
    seed: int = 0
    heldout_fraction: float = 0.4
    test_share: float = 0.5
    augment: bool = True
    finetune: bool = False
    finetune_epochs: int = 1
    finetune_lr: float = 2e-5
    finetune_layers: int = 2
    first_stage: bool = True
    first_stage_miss: float = 0.02
    n_features: int = 2**18
    batch_size: int = 64


@dataclass
class Splits:
    """Deterministic per-class split into train / calibration / test (indices into the deduplicated inputs)."""

    train: list[str] = field(default_factory=list)
    calib: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)


def split_prompts(prompts: Sequence[str], heldout_fraction: float, test_share: float,
                  rng: np.random.Generator) -> Splits:
    """Shuffle with ``rng``; hold out ``round(n * heldout_fraction)``, of which ``test_share`` is for testing."""
    order = rng.permutation(len(prompts))
    n_held = round(len(prompts) * heldout_fraction)
    n_test = round(n_held * test_share)
    held = [prompts[i] for i in order[:n_held]]
    return Splits(train=[prompts[i] for i in order[n_held:]], calib=held[n_test:], test=held[:n_test])


def _dedupe(prompts: Sequence[str], field_name: str) -> list[str]:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise BadInput(field_name, type(prompts).__name__, "a list of strings")
    return list(dict.fromkeys(prompts))


def _augment(forget: list[str], retain: list[str], rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """Training pairs that teach the head to spot a forget question next to unrelated text.

    Each forget prompt joined with a random retain prompt (random order) is positive; each retain prompt joined
    with another retain prompt is negative. Mirrors what a scoring window sees in a long prompt.
    """
    texts, labels = [], []
    if not retain:
        return texts, labels
    for group, label in ((forget, 1), (retain, 0)):
        for p in group:
            other = retain[int(rng.integers(len(retain)))]
            texts.append(f"{p} {other}" if rng.random() < 0.5 else f"{other} {p}")
            labels.append(label)
    return texts, labels


def _rates(flags_forget: np.ndarray, flags_retain: np.ndarray) -> dict[str, Any]:
    """Measured FPR / FNR with counts and a one-sided 95% Clopper-Pearson upper bound on the FPR."""
    from scipy.stats import beta

    n_r, n_f = int(flags_retain.size), int(flags_forget.size)
    fp, fn = int(flags_retain.sum()), int((~flags_forget).sum())
    ub = float(beta.ppf(0.95, fp + 1, n_r - fp)) if 0 < n_r and fp < n_r else (1.0 if n_r else None)
    return {"fpr": fp / n_r if n_r else None, "fnr": fn / n_f if n_f else None,
            "false_positives": fp, "false_negatives": fn, "n_retain": n_r, "n_forget": n_f,
            "fpr_upper95": ub}


class PromptClassifier:
    """Flags prompts about the forget target. ``score(prompts) -> [B]``, ``flag(prompts) -> bool [B]``.

    ``flag(p)`` is exactly ``score(p) > threshold``; windows cleared by the first stage score ``-inf``.
    """

    def __init__(self, encoder: Encoder, head: torch.nn.Module, config: ClassifierConfig, threshold: float,
                 report: dict[str, Any] | None = None, ngram: NgramModel | None = None,
                 ngram_threshold: float | None = None) -> None:
        self.encoder, self.head, self.config = encoder, head.eval(), config
        self.threshold = float(threshold)
        self.report = report or {}
        self.ngram, self.ngram_threshold = ngram, ngram_threshold

    # -- fitting -----------------------------------------------------------------------------------------------

    @classmethod
    def fit(cls, forget: Sequence[str], retain: Sequence[str], *, fpr: float = 0.01, seed: int = 0,
            calibration: str = "marginal", delta: float = 0.1,
            heldout_fraction: float = 0.4, test_share: float = 0.5, head: str = "logreg", hidden: int = 256,
            l2: float = 1e-3, window: int = 32, stride: int = 16, augment: bool = True, finetune: bool = False,
            finetune_epochs: int = 1, finetune_lr: float = 2e-5, finetune_layers: int = 2,
            first_stage: bool = True,
            first_stage_miss: float = 0.02, n_features: int = 2**18, encoder: Encoder | str | None = None,
            batch_size: int = 64, progress: bool = False) -> PromptClassifier:
        """Split, train the head (and optionally the encoder), calibrate the threshold, measure FPR/FNR.

        ``heldout_fraction`` of each class is held out (seeded by ``seed``); ``test_share`` of that is kept for
        the measured ``report`` and the rest calibrates the thresholds. ``calibration="marginal"``: the
        split-conformal quantile, ``P(flag | retain) <= fpr`` on average over calibration draws;
        ``"pac"``: ``P(FPR > fpr) <= delta`` over calibration draws (needs more retain prompts, stricter
        threshold; :func:`~forgetlab.eco.conformal.conformal_pac_threshold`). ``encoder`` may be a loaded
        :class:`Encoder` (it is copied before fine-tuning, never modified), a folder, or None for MiniLM.
        """
        check_range("fpr", fpr, 0.0, 1.0, lo_open=True, hi_open=True)
        check_range("heldout_fraction", heldout_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        check_range("test_share", test_share, 0.0, 1.0, lo_open=False, hi_open=True)
        check_range("first_stage_miss", first_stage_miss, 0.0, 1.0, lo_open=True, hi_open=True)
        check_choice("head", head, HEADS)
        check_choice("calibration", calibration, ("marginal", "pac"))
        check_range("delta", delta, 0.0, 1.0, lo_open=True, hi_open=True)
        if not (isinstance(window, int) and 8 <= window <= 254):
            raise BadInput("window", window, "an integer in [8, 254] word pieces (MiniLM reads 256 with "
                                             "[CLS]/[SEP])")
        if not (isinstance(stride, int) and 1 <= stride <= window):
            raise BadInput("stride", stride, f"an integer in [1, window={window}]")
        for name, value in (("hidden", hidden), ("n_features", n_features), ("batch_size", batch_size),
                            ("finetune_epochs", finetune_epochs)):
            if not (isinstance(value, int) and value >= 1):
                raise BadInput(name, value, "a positive integer")
        forget, retain = _dedupe(forget, "forget"), _dedupe(retain, "retain")
        if not forget:
            raise BadInput("forget", "no prompts", "at least one forget prompt")
        if not retain:
            raise BadInput("retain", "no prompts", "at least one retain prompt")
        both = set(forget) & set(retain)
        if both:
            raise BadInput("prompts", sorted(both)[0][:120], "each prompt in forget or retain, not both "
                                                              f"({len(both)} appear in both)")
        enc = encoder if isinstance(encoder, Encoder) else Encoder.load(encoder)
        if finetune:
            _trainable_encoder_params(enc.model, finetune_layers)  # validate before any work
        cfg = ClassifierConfig(encoder=enc.ref, head=head, hidden=hidden, l2=l2, window=window, stride=stride,
                               fpr=fpr, calibration=calibration, delta=delta, seed=seed, heldout_fraction=heldout_fraction, test_share=test_share,
                               augment=augment, finetune=finetune, finetune_epochs=finetune_epochs,
                               finetune_lr=finetune_lr, finetune_layers=finetune_layers,
                               first_stage=first_stage,
                               first_stage_miss=first_stage_miss, n_features=n_features,
                               batch_size=batch_size)
        rng = np.random.default_rng(seed)
        fs = split_prompts(forget, heldout_fraction, test_share, rng)
        rs = split_prompts(retain, heldout_fraction, test_share, rng)
        if not fs.train or not rs.train:
            raise BadInput("heldout_fraction", heldout_fraction,
                           "a fraction that leaves at least one forget and one retain prompt for training")
        calibrate = (lambda sc: conformal_upper_threshold(sc, fpr)) if calibration == "marginal" else (
            lambda sc: conformal_pac_threshold(sc, fpr, delta))
        try:  # fail before any embedding when the calibration split is too small
            calibrate(np.arange(len(rs.calib), dtype=float))
        except BadInput as exc:
            need = int(re.search(r"at least (\d+)", exc.allowed).group(1))
            total = math.ceil(need / (heldout_fraction * (1 - test_share)))
            raise BadInput("retain", f"{len(retain)} prompts ({len(rs.calib)} held out for calibration)",
                           exc.allowed + f"; with heldout_fraction={heldout_fraction} and test_share="
                           f"{test_share} that is about {total} retain prompts in all") from None

        texts = fs.train + rs.train
        labels = [1] * len(fs.train) + [0] * len(rs.train)
        if augment:
            extra, extra_labels = _augment(fs.train, rs.train, rng)
            texts, labels = texts + extra, labels + extra_labels
        gen = torch.Generator().manual_seed(seed)
        head_mod = HEADS[head](enc.dim, hidden, gen)
        y = torch.tensor(labels, dtype=torch.float32)
        x = torch.from_numpy(enc.embed(texts, batch_size, progress))
        _train_head(head_mod, x, y, l2, steps=200)
        if finetune:
            enc = copy.deepcopy(enc)
            _finetune(enc, head_mod, texts, y, finetune_epochs, finetune_lr, finetune_layers, batch_size, gen,
                      progress)
            cfg.encoder = enc.ref = "encoder"  # saved beside the head

        clf = cls(enc, head_mod, cfg, threshold=math.inf)
        if first_stage:
            clf.ngram = NgramModel.fit(texts, np.asarray(labels), n_features=n_features)
        # calibration: the same max-over-windows scoring used at inference, on held-out data only
        calib_scores = clf.score(rs.calib, first_stage=False)
        clf.threshold = calibrate(calib_scores)
        first_note = "disabled"
        if first_stage and fs.calib:
            clf.ngram_threshold = conformal_lower_threshold(clf._max_window_ngram(fs.calib), first_stage_miss)
            first_note = "enabled" if clf.ngram_threshold is not None else (
                f"disabled: {len(fs.calib)} held-out forget prompts are too few for miss={first_stage_miss}")
        elif first_stage:
            first_note = "disabled: no held-out forget prompts"
        if clf.ngram_threshold is None:
            clf.ngram = None
        clf.report = clf._measure(fs, rs, calib_scores, first_note)
        return clf

    def _max_window_ngram(self, prompts: Sequence[str]) -> np.ndarray:
        """Max first-stage score over each prompt's windows ``[B]`` (what decides whether it is cleared)."""
        units, owner = self._units(prompts)
        out = np.full(len(prompts), -np.inf)
        np.maximum.at(out, owner, self.ngram.local_score(units))
        return out

    def _measure(self, fs: Splits, rs: Splits, calib_scores: np.ndarray, first_note: str) -> dict[str, Any]:
        """The report: split sizes, threshold, and FPR/FNR measured on the test split (cascade and exact)."""
        report: dict[str, Any] = {
            "fpr_target": self.config.fpr, "calibration": self.config.calibration,
            "delta": self.config.delta if self.config.calibration == "pac" else None,
            "threshold": self.threshold,
            "n": {"train_forget": len(fs.train), "train_retain": len(rs.train),
                  "calib_forget": len(fs.calib), "calib_retain": len(rs.calib),
                  "test_forget": len(fs.test), "test_retain": len(rs.test)},
            "calibration_fpr": float(np.mean(calib_scores > self.threshold)),
            "first_stage": {"status": first_note, "threshold": self.ngram_threshold,
                            "miss_target": self.config.first_stage_miss},
        }
        if fs.test or rs.test:
            exact_f = self.score(fs.test, first_stage=False)
            exact_r = self.score(rs.test, first_stage=False)
            report["test_exact"] = _rates(exact_f > self.threshold, exact_r > self.threshold)
            if self.ngram is not None:
                casc_f, casc_r = self.score(fs.test), self.score(rs.test)
                report["test"] = _rates(casc_f > self.threshold, casc_r > self.threshold)
                cleared = np.concatenate([casc_f, casc_r]) == -np.inf
                report["first_stage"]["cleared_fraction_test"] = float(cleared.mean())
            else:
                report["test"] = report["test_exact"]
        else:
            report["test"] = {"note": "no test split (test_share=0): rates not measured"}
        return report

    # -- scoring -----------------------------------------------------------------------------------------------

    def _units(self, prompts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """Window texts of all prompts and the prompt index of each."""
        units, owner = [], []
        tok = self.encoder.tokenizer
        for i, p in enumerate(prompts):
            for a, b in token_windows(tok, p, self.config.window, self.config.stride):
                units.append(p[a:b])
                owner.append(i)
        return units, np.asarray(owner, dtype=np.int64)

    def _head_scores(self, texts: Sequence[str]) -> np.ndarray:
        emb = self.encoder.embed(texts, self.config.batch_size)
        with torch.inference_mode():
            return self.head(torch.from_numpy(emb)).squeeze(-1).double().numpy()

    def score(self, prompts: Sequence[str] | str, first_stage: bool | None = None) -> np.ndarray:
        """Max head logit over each prompt's windows ``[B]`` float64; -inf where the first stage cleared all.

        ``first_stage=None`` uses the first stage when it was fitted; False forces MiniLM on every window.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not all(isinstance(p, str) for p in prompts):
            raise BadInput("prompts", "non-string item", "a list of strings")
        use_first = self.ngram is not None and self.ngram_threshold is not None
        if first_stage and not use_first:
            raise BadInput("first_stage", True, "False or None: this classifier has no fitted first stage")
        use_first = use_first if first_stage is None else bool(first_stage)
        out = np.full(len(prompts), -np.inf)
        if not prompts:
            return out
        units, owner = self._units(prompts)
        unit_scores = np.full(len(units), -np.inf)
        keep = np.ones(len(units), dtype=bool)
        if use_first:
            keep = self.ngram.local_score(units) >= self.ngram_threshold
        idx = np.flatnonzero(keep)
        if idx.size:
            unit_scores[idx] = self._head_scores([units[i] for i in idx])
        np.maximum.at(out, owner, unit_scores)
        return out

    def flag(self, prompts: Sequence[str] | str, first_stage: bool | None = None) -> np.ndarray:
        """``score(prompts) > threshold`` as bool ``[B]`` (strict: the conformal rule's direction)."""
        return self.score(prompts, first_stage) > self.threshold

    # -- persistence -------------------------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write ``head.safetensors`` (+ ``first_stage.safetensors``, + ``encoder/`` if fine-tuned) and
        ``classifier.json`` (config, thresholds, report, checksums), the JSON last. The frozen encoder is
        referenced by name or path, not copied."""
        path = prepare_out_dir(path, overwrite=overwrite, field="path")
        save_tensors(path / "head.safetensors", dict(self.head.state_dict()))
        if self.ngram is not None:
            save_tensors(path / "first_stage.safetensors",
                         {"weight": torch.from_numpy(self.ngram.weight),
                          "bias": torch.tensor([self.ngram.bias], dtype=torch.float64)})
        if self.config.finetune:
            self.encoder.model.save_pretrained(str(path / "encoder"))
            self.encoder.tokenizer.save_pretrained(str(path / "encoder"))
        meta = {"format": FORMAT_PROMPT, "format_version": FORMAT_VERSION, "threshold": self.threshold,
                "first_stage_threshold": self.ngram_threshold, "report": self.report,
                "files": folder_checksums(path, exclude={"classifier.json"}),
                **run_record(asdict(self.config), seed=self.config.seed)}
        atomic_write_json(path / "classifier.json", meta)
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, encoder: Encoder | None = None) -> PromptClassifier:
        """Load a folder written by :meth:`save_pretrained`, verifying file checksums.

        ``encoder``: an already-loaded frozen encoder to reuse (must be the one recorded in the folder).
        """
        path = Path(path)
        meta = _read_meta(path, "classifier.json", FORMAT_PROMPT)
        verify_checksums(path, meta.get("files", {}), f"classifier {path}", "classifier.json")
        try:
            cfg = ClassifierConfig(**meta["config"])
        except TypeError as exc:
            raise ForgetlabError(f"{path / 'classifier.json'}: unexpected config ({exc})") from None
        if cfg.finetune:
            enc = Encoder.load(path / "encoder")
            enc.ref = "encoder"
        elif encoder is not None:
            if encoder.ref != cfg.encoder:
                raise BadInput("encoder", encoder.ref, f"the encoder recorded in {path}: {cfg.encoder!r}")
            enc = encoder
        else:
            enc = Encoder.load(cfg.encoder)
        head = HEADS[check_choice("head", cfg.head, HEADS)](enc.dim, cfg.hidden, torch.Generator())
        try:
            head.load_state_dict(load_tensors(path / "head.safetensors"))
        except RuntimeError as exc:
            raise ForgetlabError(f"{path / 'head.safetensors'}: does not fit head {cfg.head!r} "
                                 f"({str(exc).splitlines()[0]})") from None
        ngram, ngram_t = None, meta.get("first_stage_threshold")
        if ngram_t is not None:
            t = load_tensors(path / "first_stage.safetensors")
            ngram = NgramModel(weight=t["weight"].numpy(), bias=float(t["bias"][0]))
        return cls(enc, head, cfg, threshold=float(meta["threshold"]), report=meta.get("report", {}),
                   ngram=ngram, ngram_threshold=ngram_t)


def _trainable_encoder_params(model: torch.nn.Module, layers: int) -> list[torch.nn.Parameter]:
    """Parameters of the top ``layers`` transformer layers (all parameters when ``layers`` < 0)."""
    if layers < 0:
        return list(model.parameters())
    blocks = getattr(getattr(model, "encoder", None), "layer", None)
    if blocks is None:
        raise BadInput("finetune_layers", layers, "-1 (all) for an encoder without .encoder.layer blocks")
    if layers > len(blocks):
        raise BadInput("finetune_layers", layers, f"-1 (all) or at most {len(blocks)} layers")
    return [p for block in list(blocks)[len(blocks) - layers:] for p in block.parameters()]


def _finetune(enc: Encoder, head: torch.nn.Module, texts: list[str], y: torch.Tensor, epochs: int, lr: float,
              layers: int, batch_size: int, gen: torch.Generator, progress: bool) -> None:
    """Fine-tune the top ``layers`` encoder layers (-1: all) with the head (AdamW, class-balanced BCE).

    Top layers only by default: on a few hundred prompts it is cheaper and overfits less. Dropout stays off so
    runs are reproducible (every random draw comes from ``gen``).
    """
    from .encoder import _progress

    trainable = _trainable_encoder_params(enc.model, layers)
    for p in enc.model.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    enc.model.eval()
    pos = y.sum().clamp_min(1.0)
    neg = (len(y) - y.sum()).clamp_min(1.0)
    weights = torch.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg))
    opt = torch.optim.AdamW([{"params": trainable, "lr": lr},
                             {"params": head.parameters(), "lr": 1e-3}], weight_decay=0.0)
    steps = math.ceil(len(texts) / batch_size)
    bar = _progress(progress, epochs * steps, "fine-tuning")
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(texts), generator=gen).tolist()
            for s in range(0, len(texts), batch_size):
                idx = order[s:s + batch_size]
                logits = head(enc.pooled(enc.encode_batch([texts[i] for i in idx]))).squeeze(-1)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx], weight=weights[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.advance()
    bar.close()
    for p in enc.model.parameters():
        p.requires_grad_(False)
    enc.model.eval()
    head.eval()


# ----------------------------------------------------------------------------------------------------------------
# files


def _read_meta(path: Path, name: str, fmt: str) -> dict[str, Any]:
    if not path.is_dir():
        raise BadInput("path", str(path), "a folder written by save_pretrained")
    meta = read_json(path / name)
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ForgetlabError(f"{path / name}: not a {fmt} record")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ForgetlabError(f"{path / name}: format_version {meta.get('format_version')} is newer than this "
                             f"forgetlab reads ({FORMAT_VERSION})")
    return meta


# ----------------------------------------------------------------------------------------------------------------
# token classifier

_WORD = re.compile(r"[^\W_]+")
_MAX_GAP = 3  # characters allowed between the words of a multi-word entity ("Al-Kuwaiti", "Jr., ")


def _edit_distance_le1(a: str, b: str) -> bool:
    """Whether the Levenshtein distance of ``a`` and ``b`` is at most 1."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la > lb:
        a, b, la, lb = b, a, lb, la
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    return a[i + 1:] == b[i + 1:] if la == lb else a[i:] == b[i + 1:]


@dataclass
class TokenClassifier:
    """Character spans of a prompt that name a forget entity (to corrupt only those tokens).

    Matching is case-insensitive on words (``[^\\W_]+``). A full entity matches as its words in order, at most
    ``_MAX_GAP`` characters apart; so does a run of two or more of its consecutive words holding a distinctive
    word ("Al-Kuwaiti" of "Basil Mahfouz Al-Kuwaiti"). A distinctive word also matches alone: at least
    ``min_part_len`` long and not in ``common`` (words seen in retain prompts, so a shared first name such as
    "Maria" is corrupted only as part of the full forget name). Words of at least ``fuzzy_min_len`` characters
    match with one edit (typos), unless the word is itself in ``common``; a lone word only when capitalized.
    ``fallback`` decides what a prompt without a match gets: ``"all"`` (the whole prompt, ECO's default) or
    ``"none"``. Rules, not a trained tagger: they behave the same on every LM tokenizer and their misses are
    easy to read.
    """

    entities: list[str]
    common: list[str] = field(default_factory=list)
    min_part_len: int = 4
    fuzzy_min_len: int = 5
    fallback: str = "all"

    def __post_init__(self) -> None:
        check_choice("fallback", self.fallback, ("all", "none"))
        self._parts = [[w.lower() for w in _WORD.findall(e)] for e in self.entities]
        self._parts = [p for p in self._parts if p]
        common = {c.lower() for c in self.common}
        self._common = common
        self._singles = sorted({w for parts in self._parts for w in parts
                                if len(w) >= self.min_part_len and w not in common})

    @classmethod
    def fit(cls, entities: Sequence[str] | None = None, *, forget: Sequence[str] | None = None,
            retain: Sequence[str] | None = None, min_count: int = 2, fallback: str = "all") -> TokenClassifier:
        """From known entity names, or (when ``entities`` is None) mined from the prompts: capitalized word runs
        seen in at least ``min_count`` forget prompts and in no retain prompt. Retain words become ``common``."""
        retain = list(retain or [])
        retain_words = sorted({w.lower() for p in retain for w in _WORD.findall(p)})
        if entities is None:
            if not forget:
                raise BadInput("entities", None, "a list of entity names, or forget prompts to mine them from")
            entities = mine_entities(forget, retain, min_count=min_count)
        entities = [e for e in dict.fromkeys(entities) if isinstance(e, str) and _WORD.search(e)]
        if not entities:
            raise BadInput("entities", "none found", "at least one entity name with a letter or digit")
        return cls(entities=list(entities), common=retain_words, fallback=fallback)

    def _match(self, word: str, part: str) -> bool:
        if word == part:
            return True
        # a typo match, unless the word is itself a known retain word ("Isolde" is not a typo of "Isolda")
        return (len(part) >= self.fuzzy_min_len and word not in self._common
                and _edit_distance_le1(word, part))

    def entity_spans(self, prompt: str, lone_words: bool = True) -> list[tuple[int, int]]:
        """Character spans of entity mentions (full names and distinctive single words), merged, sorted.

        ``lone_words=False`` keeps only full names and runs of two or more entity words: the mentions that
        identify the entity (a lone first name is often shared by other people)."""
        words = [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(prompt)]
        spans: list[tuple[int, int]] = []
        singles = set(self._singles)
        for i in range(len(words)):
            for parts in self._parts:
                for j0 in range(len(parts)):  # runs of consecutive entity words, from any of its words
                    j = 0
                    while (j0 + j < len(parts) and i + j < len(words)
                           and self._match(words[i + j][0], parts[j0 + j])
                           and (j == 0 or words[i + j][1] - words[i + j - 1][2] <= _MAX_GAP)):
                        j += 1
                    whole = j == len(parts)
                    if whole or (j >= 2 and any(p in singles for p in parts[j0:j0 + j])):
                        spans.append((words[i][1], words[i + j - 1][2]))
            w, a, b = words[i]
            # a lone word: exact, or a typo only when written as a name ("Quenbi", not "quiet" for "Quint")
            if not lone_words:
                continue
            if w in singles or (prompt[a].isupper() and any(self._match(w, s) for s in self._singles)):
                spans.append((a, b))
        return _merge(spans)

    def char_spans(self, prompt: str) -> list[tuple[int, int]]:
        """Spans to corrupt: the entity mentions, else ``[(0, len(prompt))]`` (``fallback="all"``) or ``[]``."""
        spans = self.entity_spans(prompt)
        if not spans and self.fallback == "all" and prompt:
            return [(0, len(prompt))]
        return spans

    def save_pretrained(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write ``token_classifier.json`` (the rules are the whole model: no tensors)."""
        path = prepare_out_dir(path, overwrite=overwrite, field="path")
        atomic_write_json(path / "token_classifier.json",
                          {"format": FORMAT_TOKEN, "format_version": FORMAT_VERSION,
                           "entities": self.entities, "common": self.common,
                           "min_part_len": self.min_part_len, "fuzzy_min_len": self.fuzzy_min_len,
                           "fallback": self.fallback})
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TokenClassifier:
        meta = _read_meta(Path(path), "token_classifier.json", FORMAT_TOKEN)
        try:
            return cls(entities=list(meta["entities"]), common=list(meta.get("common", [])),
                       min_part_len=int(meta["min_part_len"]), fuzzy_min_len=int(meta["fuzzy_min_len"]),
                       fallback=meta["fallback"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ForgetlabError(f"{Path(path) / 'token_classifier.json'}: broken record ({exc})") from None


def entity_flags(token_classifier: TokenClassifier, prompts: Sequence[str]) -> np.ndarray:
    """``bool [N]``: does each prompt name a forget entity (its full name or two or more of its words in a row,
    typos allowed). A lone name part does not count: other people share first names and surnames (measured in
    the unlearning bench: lone parts flagged 20% of never-seen authors' questions on forget10).

    ORed with a prompt classifier's flags, a name the classifier scores low is still caught: the classifier
    learns what forget prompts look like, the matcher knows who they are about.
    """
    return np.array([bool(token_classifier.entity_spans(p, lone_words=False)) for p in prompts], dtype=bool)


def mine_entities(forget: Sequence[str], retain: Sequence[str], min_count: int = 2) -> list[str]:
    """Capitalized word runs (``Basil Mahfouz Al-Kuwaiti``) in >= ``min_count`` forget prompts, in no retain
    prompt, most frequent first; runs that only open a sentence (one capitalized word) are skipped."""
    run = re.compile(r"(?<![\w])[A-Z][\w'’-]*(?:[ \-][A-Z][\w'’-]*)*")
    opener = re.compile(r"(?:^|[.!?]\s+)$")

    def runs(text: str) -> set[str]:
        found = set()
        for m in run.finditer(text):
            name = re.sub(r"['’]s$", "", m.group())
            if " " not in name and "-" not in name and opener.search(text[:m.start()]):
                continue
            found.add(name)
        return found

    retain_text = "\n".join(retain).lower()
    counts: dict[str, int] = {}
    for p in forget:
        for name in runs(p):
            counts[name] = counts.get(name, 0) + 1
    keep = [n for n, c in counts.items() if c >= min_count and n.lower() not in retain_text]
    return sorted(keep, key=lambda n: (-counts[n], n))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def token_mask_from_spans(offset_mapping: Any, spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Which tokens to corrupt: True where a token's character range ``[start, end)`` overlaps a span.

    ``offset_mapping``: the LM tokenizer's ``return_offsets_mapping`` for one prompt (``[T, 2]``, list or
    tensor); special tokens (empty ranges) are never selected.
    """
    offsets = offset_mapping.tolist() if hasattr(offset_mapping, "tolist") else offset_mapping
    mask = []
    for start, end in offsets:
        mask.append(end > start and any(start < b and end > a for a, b in spans))
    return mask
