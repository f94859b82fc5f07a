"""``forgetlab eco evaluate``: one model or guard on a published suite, side by side with a base and a retain model.

A :class:`Subject` is what is measured: a plain causal LM folder (or hub id) or a guard folder, loaded on the
:class:`~forgetlab.eco.placement.Placement` asked for; plain models and guards go through the same measurements
(a plain model is a guard that flags nothing). :data:`SUITES` maps a suite to its runner:

| suite  | data (:mod:`forgetlab.unlearning.formats`) | numbers                                                 |
|--------|--------------------------------------------|---------------------------------------------------------|
| tofu   | a TOFU folder, one forget split            | forget truth ratio, probability, ROUGE, MIA AUCs, model utility; forget quality vs the retain model |
| muse   | a MUSE corpus folder                       | VerbMem and KnowMem ROUGE-L F1, Min-K% AUC; PrivLeak vs the retain model |
| wmdp   | a WMDP folder                              | accuracy with choice continuations and with letter prompts, per subset |
| mmlu   | an MMLU folder (either layout)             | the same per subject, letter prompts with ``shots`` dev examples |

:func:`run_evaluation` measures every subject given (``model``, ``base``, ``retain``) and the comparisons with
the retain model, and returns one record (config, versions, placement, metrics).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..eco.placement import Placement
from ..errors import BadInput, check_choice
from ..options import setting
from ..registry import Registry
from ..runs import run_record

SUITE_NAMES = ("tofu", "muse", "wmdp", "mmlu")


@dataclass(frozen=True)
class EvalOptions:
    """How a suite is measured (each field is an option of ``forgetlab eco evaluate``)."""

    split: str = setting("forget10", "TOFU forget split: forget01, forget05 or forget10.",
                         choices=("forget01", "forget05", "forget10"))
    generate: bool = setting(True, "Generate answers (ROUGE, VerbMem, KnowMem); --no-generate scores only.")
    max_new_tokens: int = setting(24, "New tokens per generated TOFU answer (MUSE uses its own: 128 and 32).")
    batch_size: int = setting(16, "Sequences per forward pass.")
    shots: int = setting(0, "Solved dev examples before each letter prompt (MMLU; lm-eval's MMLU uses 5).")

    def __post_init__(self) -> None:
        check_choice("split", self.split, ("forget01", "forget05", "forget10"))
        for name, lo in (("max_new_tokens", 1), ("batch_size", 1), ("shots", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise BadInput(name, v, f"an integer >= {lo}")


@dataclass
class Subject:
    """A measured model: its role (``model``, ``base``, ``retain``), where it came from, and what scores it."""

    role: str
    path: str
    kind: str  # "guard" or "model"
    model: Any
    tokenizer: Any
    guard: Any = None  # the EcoGuard of a guard folder
    scorer: Any = field(default=None, repr=False)  # guard, or PlainModel: has score_packed

    def describe(self) -> dict[str, Any]:
        out = {"path": self.path, "kind": self.kind, "device": str(self.scorer.device),
               "dtype": str(self.scorer.dtype).replace("torch.", "")}
        if self.guard is not None:
            c = self.guard.config
            out.update(corruption=c.corruption, strength=c.strength, k=c.k)
        return out


def is_guard_folder(path: str | Path) -> bool:
    """A folder written by ``EcoGuard.save_pretrained`` (it holds ``guard.json``)."""
    return (Path(path) / "guard.json").is_file()


def _field(role: str) -> str:
    return "model" if role == "model" else f"{role}_model"


def check_subject(role: str, path: str | Path) -> None:
    """:class:`BadInput` naming the role's option unless ``path`` is a guard folder, a model folder with weights
    or a hub id in the local cache (cheap: nothing is loaded)."""
    from ..eco.base_model import check_model_folder, resolve_model

    if is_guard_folder(path):
        return
    try:
        check_model_folder(resolve_model(path).folder)
    except BadInput as exc:
        raise BadInput(_field(role), str(path), "a guard folder, a Hugging Face model folder (config.json and "
                       f"weights) or a hub id in the local cache ({exc.allowed})") from None


def load_subject(role: str, path: str | Path, placement: Placement) -> Subject:
    """Load a plain model (folder or hub id) or a guard folder for ``role``, on ``placement``."""
    from ..eco.base_model import load_base_model, resolve_model
    from ..eco.guard import EcoGuard, PlainModel

    if is_guard_folder(path):
        guard = EcoGuard.from_pretrained(path, placement=placement)
        return Subject(role, str(path), "guard", guard.model, guard.tokenizer, guard, guard)
    check_subject(role, path)
    model, tok = load_base_model(resolve_model(path).folder, placement=placement)
    return Subject(role, str(path), "model", model, tok, None, PlainModel(model, tok))


# --- the suites ----------------------------------------------------------------------------------------------

def _tofu(subject: Subject, data, opts: EvalOptions, say) -> tuple[dict[str, Any], Any]:
    from .evaluate import evaluate_model
    from .lm import prompt_of

    guard = subject.guard
    flagger = None if guard is None else (lambda qs: guard.classify([prompt_of(q) for q in qs]))
    ev = evaluate_model(subject.model, subject.tokenizer, data, guard=guard, flagger=flagger,
                        max_new_tokens=opts.max_new_tokens, batch_size=opts.batch_size, generate=opts.generate,
                        progress=say)
    return {**ev.summary, "utility_parts": ev.utility_parts, "mia_auc": ev.mia_auc, "missing": ev.missing}, ev


def _tofu_compare(ev, retain_ev) -> dict[str, Any]:
    from .evaluate import compare

    return compare(ev, retain_ev)


def _muse(subject: Subject, data, opts: EvalOptions, say) -> tuple[dict[str, Any], Any]:
    from .muse_eval import evaluate_muse

    ev = evaluate_muse(subject, data, batch_size=opts.batch_size, generate=opts.generate, progress=say)
    return {**ev.summary, "missing": ev.missing}, ev


def _muse_compare(ev, retain_ev) -> dict[str, Any]:
    from .muse_eval import compare_muse

    return compare_muse(ev, retain_ev)


def _mc(subject: Subject, data, opts: EvalOptions, say) -> tuple[dict[str, Any], Any]:
    from .mc_eval import evaluate_mc

    test, dev = (data.test, data.dev) if hasattr(data, "test") else (data, {})
    res = evaluate_mc(subject, test, dev, shots=opts.shots, batch_size=opts.batch_size, progress=say)
    return res, res


@dataclass(frozen=True)
class Suite:
    """A suite's loader arguments, runner and comparison with the retain model (None: no comparison)."""

    load: Callable[[Path, EvalOptions], Any]
    run: Callable[[Subject, Any, EvalOptions, Callable[[str], None]], tuple[dict[str, Any], Any]]
    compare: Callable[[Any, Any], dict[str, Any]] | None


def _load(name: str) -> Callable[[Path, EvalOptions], Any]:
    from .formats import LOADERS

    def load(folder: Path, opts: EvalOptions) -> Any:
        fn = LOADERS.get(name)
        return fn(folder, opts.split) if name == "tofu" else fn(folder)

    return load


SUITES: Registry[Suite] = Registry("suite", {
    "tofu": Suite(_load("tofu"), _tofu, _tofu_compare),
    "muse": Suite(_load("muse"), _muse, _muse_compare),
    "wmdp": Suite(_load("wmdp"), _mc, None),
    "mmlu": Suite(_load("mmlu"), _mc, None),
})


def run_evaluation(suite: str, data_dir: str | Path, models: dict[str, str | Path], placement: Placement,
                   opts: EvalOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure each of ``models`` (role -> path; ``model`` required, ``base`` / ``retain`` optional) on the
    suite's data; the data is loaded (and checked) before any model. Returns the run record with ``metrics``
    per role and ``vs_retain`` comparisons."""
    spec = SUITES.get(suite, "suite")
    say = progress or (lambda _s: None)
    data = spec.load(Path(data_dir), opts)
    for role, path in models.items():  # every model is found before any is loaded
        check_subject(role, path)
    t0 = time.perf_counter()
    metrics: dict[str, Any] = {}
    states: dict[str, Any] = {}
    subjects: dict[str, Any] = {}
    for role, path in models.items():
        say(f"{role}: loading {path}")
        subject = load_subject(role, path, placement)
        subjects[role] = subject.describe()
        check = getattr(data, "check_encodable", None)
        if check is not None:
            check(subject.tokenizer)
        metrics[role], states[role] = spec.run(subject, data, opts,
                                               lambda s, r=role: say(f"{r}: {s}"))
        del subject
    vs_retain = {}
    if spec.compare is not None and "retain" in states:
        vs_retain = {role: spec.compare(states[role], states["retain"]) for role in states}
    config = {"suite": suite, "data": str(data_dir), "models": {k: str(v) for k, v in models.items()},
              "placement": placement.record(), "options": opts}
    return {**run_record(config), "subjects": subjects, "metrics": metrics, "vs_retain": vs_retain,
            "seconds": time.perf_counter() - t0}
