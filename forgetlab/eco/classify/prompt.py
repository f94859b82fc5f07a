"""ECO's prompt classifier (Liu et al., NeurIPS 2024, arXiv 2406.07933, Sec. 3.1): is a prompt about the target?

:class:`PromptClassifier` is a small head (logistic regression or MLP) on frozen all-MiniLM-L6-v2 sentence
vectors (optionally fine-tuned), with a decision threshold set on held-out retain prompts by the split-conformal
quantile, so ``P(flag | retain prompt) <= fpr`` for prompts exchangeable with the calibration set.

Every prompt is normalized first (:mod:`forgetlab.eco.classify.normalize`: case, homoglyphs, zero-width
characters, spaced letters, digits for letters), in training, calibration and scoring alike. A prompt of several
sentences is also scored per sentence (:mod:`forgetlab.eco.classify.segments`), the maximum deciding, so an
instruction, a role-play frame or filler in another sentence cannot dilute a question; training adds each
prompt inside such wrappers (:mod:`forgetlab.eco.classify.augment`), both classes alike.

Besides retain prompts, named negative sets (near-topic hard negatives, prompts about never-seen entities) are
split like the retain prompts and trained on; calibration-only sets are not trained on. Each set with enough
held-out prompts sets its own conformal threshold and the classifier takes the highest, so ``P(flag) <= fpr``
holds for each such set, not only on average over their mixture; the report gives the measured FPR per set.

Long prompts are scored in overlapping windows of ``window`` = 32 word pieces every ``stride`` = 16 (the last
window end-aligned), and a prompt takes the maximum window score: any run of at most 16 word pieces (a short
question, any entity name) lies whole in one window where it is at least half the text, so filler in front of
or behind it can neither push it out of view nor dilute it in the mean pooling. A prompt of at most 32 word
pieces is one window. Calibration uses the same windowed score, so the FPR bound holds for prompts like the
calibration prompts; very long benign prompts (many windows, each a chance to cross) are not covered by it:
calibrate on long retain prompts if you serve long prompts.

An optional first stage (:mod:`forgetlab.eco.classify.ngram`) clears clearly-benign windows without running
MiniLM. It only clears, never flags, so the conformal FPR bound still holds for the cascade; the misses it adds
are bounded by its own conformal rule on held-out forget prompts and measured in ``report``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import BadInput, ForgetlabError
from ...progress import Bar
from ...runs import (
    atomic_write_json,
    folder_checksums,
    load_tensors,
    prepare_out_dir,
    read_record,
    run_record,
    save_tensors,
    verify_checksums,
)
from .augment import wrap
from .config import HEADS, ClassifierConfig
from .conformal import conformal_lower_threshold
from .encoder import Encoder
from .heads import balanced_weights, train_head
from .ngram import NgramModel
from .normalize import normalize_text
from .precision import resolve_precision
from .segments import prompt_segments

FORMAT_PROMPT = "forgetlab.eco.PromptClassifier"
FORMAT_VERSION = 2  # 2: config.normalize / sentences / wrappers, per-set calibration
LEGACY_SCORING = {"normalize": False, "sentences": False, "wrappers": 0}
"""How a format-1 classifier scored (its threshold was calibrated so): raw text, windows only."""




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


def _negative_sets(negatives: Mapping[str, Sequence[str]], calibration: Mapping[str, Sequence[str]],
                   forget: Sequence[str]) -> dict[str, tuple[list[str], bool]]:
    """Named negative sets, deduplicated: name -> (prompts, trained on). A prompt also in forget is refused."""
    out: dict[str, tuple[list[str], bool]] = {}
    forget_set = set(forget)
    for trained, groups in ((True, negatives), (False, calibration)):
        for name, prompts in groups.items():
            if name in out or name == "retain":
                raise BadInput("negative set", name, "a name used once and not 'retain'")
            prompts = _dedupe(prompts, name)
            both = [p for p in prompts if p in forget_set]
            if both:
                raise BadInput(name, both[0][:120], f"prompts not also in forget ({len(both)} are)")
            if prompts:
                out[name] = (prompts, trained)
    return out


def _config_from(settings: dict[str, Any]) -> ClassifierConfig:
    """A validated :class:`ClassifierConfig` from keyword settings; an unknown key lists the known ones."""
    known = [f.name for f in dataclasses.fields(ClassifierConfig)]
    for key in settings:
        if key not in known:
            raise BadInput("classifier setting", key, "one of " + ", ".join(known))
    return ClassifierConfig(**settings).validate()


def _check_classes(forget: list[str], retain: list[str]) -> None:
    if not forget:
        raise BadInput("forget", "no prompts", "at least one forget prompt")
    if not retain:
        raise BadInput("retain", "no prompts", "at least one retain prompt")
    both = set(forget) & set(retain)
    if both:
        raise BadInput("prompts", sorted(both)[0][:120], "each prompt in forget or retain, not both "
                                                          f"({len(both)} appear in both)")


def _check_calibration_size(cfg: ClassifierConfig, n_retain: int, n_calib: int) -> None:
    """Fail before any embedding when the calibration split is too small for the requested FPR."""
    try:
        cfg.threshold_rule()(np.arange(n_calib, dtype=float))
    except BadInput as exc:
        need = int(re.search(r"at least (\d+)", exc.allowed).group(1))
        total = math.ceil(need / (cfg.heldout_fraction * (1 - cfg.test_share)))
        raise BadInput("retain", f"{n_retain} prompts ({n_calib} held out for calibration)",
                       exc.allowed + f"; with heldout_fraction={cfg.heldout_fraction} and test_share="
                       f"{cfg.test_share} that is about {total} retain prompts in all") from None


def _training_set(fs: Splits, rs: Splits, cfg: ClassifierConfig, rng: np.random.Generator,
                  negatives: Sequence[str] = ()) -> tuple[list[str], list[int]]:
    """Training texts and labels (1 = forget): the prompts, the extra negatives, the augmented pairs when
    ``augment``, each prompt in ``wrappers`` wrappers; normalized when ``cfg.normalize``."""
    neg = rs.train + list(negatives)
    texts = fs.train + neg
    labels = [1] * len(fs.train) + [0] * len(neg)
    if cfg.augment:
        extra, extra_labels = _augment(fs.train, rs.train, rng)
        texts, labels = texts + extra, labels + extra_labels
    if cfg.wrappers:
        texts += wrap(fs.train, rng, cfg.wrappers) + wrap(neg, rng, cfg.wrappers)
        labels += [1] * (len(fs.train) * cfg.wrappers) + [0] * (len(neg) * cfg.wrappers)
    if cfg.normalize:
        texts = [normalize_text(t) for t in texts]
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
        self.heldout: dict[str, list[str]] = {}  # test prompts of the fit, per set (not saved): rule_report

    # -- fitting -----------------------------------------------------------------------------------------------

    @classmethod
    def fit(cls, forget: Sequence[str], retain: Sequence[str], *, negatives: Mapping[str, Sequence[str]] | None = None,
            calibration_sets: Mapping[str, Sequence[str]] | None = None, encoder: Encoder | str | None = None,
            progress: bool = False, **settings: Any) -> PromptClassifier:
        """Split, train the head (and optionally the encoder), calibrate the threshold, measure FPR/FNR.

        ``negatives``: named sets of prompts that must not be flagged (``{"hard_negative": [...],
        "unseen_entity": [...]}``), split, trained on and calibrated like the retain prompts; ``calibration_sets``:
        named sets used only to calibrate (and, for ``test_share`` of them, to measure). ``settings`` are
        :class:`ClassifierConfig` fields (``fpr=0.01``, ``seed=0``, ...). ``encoder`` may be a loaded
        :class:`Encoder` (it is copied before fine-tuning, never modified), a folder, or None for MiniLM.
        """
        cfg = _config_from(settings)
        forget, retain = _dedupe(forget, "forget"), _dedupe(retain, "retain")
        _check_classes(forget, retain)
        groups = _negative_sets(negatives or {}, calibration_sets or {}, forget)
        enc = (encoder if isinstance(encoder, Encoder) else Encoder.load(encoder)).with_precision("fp32")
        if cfg.finetune:
            _trainable_encoder_params(enc.model, cfg.finetune_layers)  # validate before any work
        cfg = dataclasses.replace(cfg, encoder=enc.ref)
        rng = np.random.default_rng(cfg.seed)
        fs = split_prompts(forget, cfg.heldout_fraction, cfg.test_share, rng)
        rs = split_prompts(retain, cfg.heldout_fraction, cfg.test_share, rng)
        if not fs.train or not rs.train:
            raise BadInput("heldout_fraction", cfg.heldout_fraction,
                           "a fraction that leaves at least one forget and one retain prompt for training")
        _check_calibration_size(cfg, len(retain), len(rs.calib))
        sets = {name: split_prompts(p, cfg.heldout_fraction if trained else 1.0, cfg.test_share, rng)
                for name, (p, trained) in groups.items()}
        texts, labels = _training_set(fs, rs, cfg, rng, [p for sp in sets.values() for p in sp.train])
        clf = cls._train(enc, cfg, texts, labels, progress)
        clf.config = dataclasses.replace(clf.config, precision=resolve_precision(cfg.precision))  # trained in
        clf.encoder = clf.encoder.with_precision(clf.config.precision)  # fp32, calibrated in the serving precision
        clf._calibrate(fs, rs, texts, labels, sets)
        return clf

    @classmethod
    def _train(cls, enc: Encoder, cfg: ClassifierConfig, texts: list[str], labels: list[int],
               progress: bool) -> PromptClassifier:
        """Train the head on frozen sentence vectors (then fine-tune the encoder with it, when asked)."""
        gen = torch.Generator().manual_seed(cfg.seed)
        head_mod = HEADS.get(cfg.head)(enc.dim, cfg.hidden, gen)
        y = torch.tensor(labels, dtype=torch.float32)
        x = torch.from_numpy(enc.embed(texts, cfg.batch_size, progress))
        train_head(head_mod, x, y, cfg.l2, steps=200)
        if cfg.finetune:
            enc = copy.deepcopy(enc)
            _finetune(enc, head_mod, texts, y, cfg, gen, progress)
            enc.ref = "encoder"  # saved beside the head
            cfg = dataclasses.replace(cfg, encoder=enc.ref)
        return cls(enc, head_mod, cfg, threshold=math.inf)

    def _calibrate(self, fs: Splits, rs: Splits, texts: list[str], labels: list[int],
                   sets: Mapping[str, Splits]) -> None:
        """Fit the first stage, set both thresholds on held-out prompts only, and measure the report."""
        cfg = self.config
        if cfg.first_stage:
            self.ngram = NgramModel.fit(texts, np.asarray(labels), n_features=cfg.n_features)
        # the same max-over-segments scoring used at inference, on held-out data only
        calib_scores = self.score(rs.calib, first_stage=False)
        per_set = {"retain": {"n_calib": len(rs.calib), "threshold": cfg.threshold_rule()(calib_scores)}}
        for name, sp in sets.items():
            per_set[name] = self._set_threshold(name, sp.calib)
        self.threshold = max(v["threshold"] for v in per_set.values() if v["threshold"] is not None)
        note = "disabled"
        if cfg.first_stage and fs.calib:
            self.ngram_threshold = conformal_lower_threshold(self._max_window_ngram(fs.calib), cfg.first_stage_miss)
            note = "enabled" if self.ngram_threshold is not None else (
                f"disabled: {len(fs.calib)} held-out forget prompts are too few for miss={cfg.first_stage_miss}")
        elif cfg.first_stage:
            note = "disabled: no held-out forget prompts"
        if self.ngram_threshold is None:
            self.ngram = None
        self.report = self._measure(fs, rs, calib_scores, note)
        self.report["sets"] = self._measure_sets(rs, sets, per_set)
        self.heldout = {"forget": fs.test, "retain": rs.test, **{n: sp.test for n, sp in sets.items()}}

    def _set_threshold(self, name: str, prompts: Sequence[str]) -> dict[str, Any]:
        """One negative set's conformal threshold; a set too small for the requested FPR gets its highest held-out
        score (the strictest threshold it allows: ``P(flag) <= 1 / (n + 1)`` for its prompts), so that a few
        near-topic negatives still raise the threshold instead of being ignored."""
        if not prompts:
            return {"n_calib": 0, "threshold": None, "note": "not calibrated on: no held-out prompts"}
        scores = self.score(prompts, first_stage=False)
        try:
            return {"n_calib": len(prompts), "threshold": self.config.threshold_rule()(scores)}
        except BadInput as exc:
            return {"n_calib": len(prompts), "threshold": float(np.max(scores)),
                    "note": f"too few for the requested FPR ({exc.allowed.replace('retain', name)}): threshold at "
                            f"its highest held-out score, P(flag) <= 1/{len(prompts) + 1} for such prompts"}

    def _measure_sets(self, rs: Splits, sets: Mapping[str, Splits],
                      per_set: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Per negative set: its calibration record and the FPR measured on its test part (the whole rule of
        this classifier: cascade included)."""
        out = {}
        for name, test in [("retain", rs.test)] + [(n, sp.test) for n, sp in sets.items()]:
            flags = self.flag(test) if test else np.zeros(0, dtype=bool)
            rates = _rates(np.zeros(0, dtype=bool), flags)
            out[name] = {**per_set[name], "n_test": len(test), "fpr": rates["fpr"],
                         "false_positives": rates["false_positives"], "fpr_upper95": rates["fpr_upper95"]}
        return out

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
        """Segment texts of all prompts (normalized; windows, and sentences) and the prompt index of each."""
        units, owner = [], []
        cfg, tok = self.config, self.encoder.tokenizer
        for i, p in enumerate(prompts):
            text = normalize_text(p) if cfg.normalize else p
            for seg in prompt_segments(tok, text, cfg.window, cfg.stride, cfg.sentences):
                units.append(seg)
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
        meta = read_record(path, "classifier.json", FORMAT_PROMPT, FORMAT_VERSION)
        verify_checksums(path, meta.get("files", {}), f"classifier {path}", "classifier.json")
        legacy = LEGACY_SCORING if meta.get("format_version", 0) < 2 else {}
        try:
            cfg = ClassifierConfig(**{**legacy, "precision": "fp32", **meta["config"]})  # no key: fp32 era
        except TypeError as exc:
            raise ForgetlabError(f"{path / 'classifier.json'}: unexpected config ({exc})") from None
        if cfg.finetune:
            enc = Encoder.load(path / "encoder", cfg.precision)
            enc.ref = "encoder"
        elif encoder is not None:
            if encoder.ref != cfg.encoder:
                raise BadInput("encoder", encoder.ref, f"the encoder recorded in {path}: {cfg.encoder!r}")
            enc = encoder.with_precision(cfg.precision)
        else:
            enc = Encoder.load(cfg.encoder, cfg.precision)
        head = HEADS.get(cfg.head, "head")(enc.dim, cfg.hidden, torch.Generator())
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


def _finetune(enc: Encoder, head: torch.nn.Module, texts: list[str], y: torch.Tensor, cfg: ClassifierConfig,
              gen: torch.Generator, progress: bool) -> None:
    """Fine-tune the top ``layers`` encoder layers (-1: all) with the head (AdamW, class-balanced BCE).

    Top layers only by default: on a few hundred prompts it is cheaper and overfits less. Dropout stays off so
    runs are reproducible (every random draw comes from ``gen``).
    """
    epochs, batch_size = cfg.finetune_epochs, cfg.batch_size
    trainable = _trainable_encoder_params(enc.model, cfg.finetune_layers)
    for p in enc.model.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    enc.model.eval()
    weights = balanced_weights(y)
    opt = torch.optim.AdamW([{"params": trainable, "lr": cfg.finetune_lr},
                             {"params": head.parameters(), "lr": 1e-3}], weight_decay=0.0)
    steps = math.ceil(len(texts) / batch_size)
    with Bar("fine-tuning", epochs * steps, progress, transient=True) as bar, torch.enable_grad():
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
    for p in enc.model.parameters():
        p.requires_grad_(False)
    enc.model.eval()
    head.eval()
