"""The sweep store: one JSON per finished run, a manifest, claim files, and ``results.csv``.

Layout of a sweep folder::

    sweep.json                 manifest: the spec, its hash and the trainer module (a folder holding another
                               sweep, or the same one with another trainer, is refused)
    runs/<run_id>.json         one finished run: config, summary, IPR statistics, optional history
    weights/<run_id>.safetensors   optional final weights (written before the run's JSON)
    claims/<batch_id>.json     a batch some live process is training (:mod:`.claims`: by lease)
    results.csv                regenerated from runs/ (sorted, deterministic)

A run exists once its JSON exists: the JSON is written by an atomic rename named by the run's hash, so a
killed writer leaves nothing (or a hidden temp file, removed later by :meth:`SweepStore.clean_temp_files`
once its writer is gone), and two writers of the same run write the same name. A record damaged after it was
written is found by :meth:`SweepStore.damaged`, set aside and retrained (:func:`~.run.run_sweep` reports it).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...errors import ENVIRONMENT_ERRNOS, BadInput, ForgetlabError
from ...fmt import fmt
from ...output import warn
from ...runs import (
    TEMP_RE,
    atomic_write_json,
    atomic_write_text,
    clean_stale_temps,
    make_temp,
    read_json,
    save_tensors,
    to_jsonable,
    versions,
)
from ..config import SUMMARY_KEYS, TrainConfig
from ..phases import DIVERGED, PHASES
from .claims import LEASE_S, Claims
from .spec import DEFAULT_TRAINER, load_trainer, parse_cli_value, when_set_defaults

MANIFEST = "sweep.json"
RESULTS_CSV = "results.csv"
IPR_COLUMNS = ("ipr_median", "ipr_q10", "ipr_q90", "ipr_frac_above_half")


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values: ``grid.wd: [0, 5] -> [0, 5, 15]``."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            p = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{p}: absent -> {json.dumps(new[k])}")
            elif k not in new:
                out.append(f"{p}: {json.dumps(old[k])} -> absent")
            else:
                out.extend(_diff(old[k], new[k], p))
        return out
    return [] if old == new else [f"{prefix}: {json.dumps(old)} -> {json.dumps(new)}"]


class SweepStore:
    """A sweep folder. Open with :meth:`open`, which checks or writes the manifest."""

    def __init__(self, root: Path, lease_s: float = LEASE_S) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.weights_dir = self.root / "weights"
        self.claims_dir = self.root / "claims"
        self.claims = Claims(self.claims_dir, lease_s)

    # ------------------------------------------------------------------ manifest
    @classmethod
    def open(cls, root: str | os.PathLike, spec_dict: Mapping[str, Any], spec_hash: str,
             n_runs: int, trainer: str = DEFAULT_TRAINER) -> SweepStore:
        """Create the folder and manifest, or check that an existing manifest holds the same sweep, trained by
        the same trainer module (a manifest without one was written by the default trainer).

        The manifest is created first (``os.link`` of a finished temp file: atomic, and the first of several
        processes wins), then ``runs/`` and ``claims/``; so another process opening the same new folder at the
        same moment sees either nothing of ours or the manifest, and a folder is only refused as "not a sweep"
        after looking for the manifest again. A folder with other files but no manifest, or a manifest of
        another sweep, is refused naming the difference.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise BadInput("out", str(root), "a folder path (this is a file)")
        store = cls(root)
        path = root / MANIFEST
        try:
            root.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                store._create_manifest(spec_dict, spec_hash, n_runs, trainer)
            for d in (store.runs_dir, store.claims_dir):
                d.mkdir(exist_ok=True)
        except OSError as exc:
            if exc.errno not in ENVIRONMENT_ERRNOS:  # faults of the machine stay OSErrors (exit 1)
                raise BadInput("out", str(root), f"a writable folder ({exc.strerror})") from None
            raise
        store._check_manifest(spec_dict, spec_hash, trainer)
        return store

    def _create_manifest(self, spec_dict: Mapping[str, Any], spec_hash: str, n_runs: int, trainer: str) -> None:
        """Write ``sweep.json`` unless another process did first; refuse a folder holding something else."""
        path = self.root / MANIFEST
        foreign = [p.name for p in self.root.iterdir() if not _ours_before_manifest(p.name)]
        if foreign and not path.exists():  # look again: another process may have just created the manifest
            raise BadInput("out", str(self.root), "an empty folder or a sweep folder (no sweep.json here, but "
                           f"other files are: {', '.join(sorted(foreign)[:3])})")
        manifest = {"kind": "forgetlab.grok.sweep", "spec_hash": spec_hash, "n_runs": n_runs, "trainer": trainer,
                    "spec": dict(spec_dict), "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        tmp = make_temp(self.root, MANIFEST)
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(to_jsonable(manifest), fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # fails if another process created it first
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)

    def _check_manifest(self, spec_dict: Mapping[str, Any], spec_hash: str, trainer: str) -> None:
        old = read_json(self.root / MANIFEST)
        if not isinstance(old, dict) or old.get("kind") != "forgetlab.grok.sweep":
            raise BadInput("out", str(self.root), "a folder holding a forgetlab sweep (sweep.json is something else)")
        if (old_trainer := old.get("trainer", DEFAULT_TRAINER)) != trainer:
            raise BadInput("trainer", trainer, f"{old_trainer}, the trainer of the sweep in {self.root} (or a new "
                           "folder)")
        if old.get("spec_hash") != spec_hash:
            old_spec = {k: (old.get("spec") or {}).get(k) for k in ("fixed", "grid", "zip", "keep_history",
                                                                    "save_weights")}
            new_spec = {k: spec_dict.get(k) for k in old_spec}
            diff = _diff(to_jsonable(old_spec), to_jsonable(new_spec)) or ["spec hash differs"]
            raise BadInput("out", str(self.root), "a new folder, or one holding this same sweep; it holds "
                           "a different sweep (" + "; ".join(diff[:5]) + (" ..." if len(diff) > 5 else "") + ")")

    def manifest(self) -> dict[str, Any]:
        return read_json(self.root / MANIFEST)

    def trainer(self) -> str:
        """The trainer module that trained this sweep: the manifest's, else (no manifest, or one written before
        manifests named it) the default."""
        path = self.root / MANIFEST
        manifest = read_json(path) if path.is_file() else {}
        return manifest.get("trainer", DEFAULT_TRAINER) if isinstance(manifest, dict) else DEFAULT_TRAINER

    # ------------------------------------------------------------------ runs
    def run_path(self, rid: str) -> Path:
        return self.runs_dir / f"{rid}.json"

    def finished(self) -> set[str]:
        """Run ids with a finished record (hidden temp files of killed writers are ignored)."""
        if not self.runs_dir.is_dir():
            return set()
        return {p.stem for p in self.runs_dir.glob("*.json") if not p.name.startswith(".")}

    def write_run(self, record: Mapping[str, Any], weights: Mapping[str, Any] | None = None) -> None:
        """Persist one finished run: weights first (if any), then the JSON that marks it finished."""
        rid = record["run_id"]
        if weights:
            save_tensors(self.weights_dir / f"{rid}.safetensors", weights, {"run_id": rid})
        atomic_write_json(self.run_path(rid), record)

    def damaged(self) -> dict[str, str]:
        """``{run id: what is wrong}`` for every run record that cannot be trusted: not valid JSON, not a record
        of that run (its ``run_id``), no config or summary. Records are written atomically, so a damaged one
        was damaged later (by a disk, a copy, a hand); it must be retrained, never silently left out."""
        out = {}
        for rid in sorted(self.finished()):
            try:
                rec = read_json(self.run_path(rid))
            except ForgetlabError as exc:
                out[rid] = str(exc).split(": ", 1)[-1]
                continue
            if not isinstance(rec, dict) or rec.get("run_id") != rid:
                out[rid] = "not the record of this run"
            elif not isinstance(rec.get("config"), dict) or not isinstance(rec.get("summary"), dict):
                out[rid] = "no config or summary"
        return out

    def set_aside(self, rid: str) -> Path:
        """Move a damaged run record out of the way (kept, hidden, for inspection) so the run is retrained."""
        aside = self.runs_dir / f".{rid}.json.damaged-{int(time.time())}"
        os.replace(self.run_path(rid), aside)
        return aside

    def records(self) -> list[dict[str, Any]]:
        """All finished run records (read fresh from disk, configs completed by :func:`complete_configs` with the
        defaults of this sweep's trainer); a damaged one is an error naming it."""
        records = [read_json(self.run_path(rid)) for rid in sorted(self.finished())]
        return relabel_diverged(complete_configs(records, self._config_cls()))

    def _config_cls(self) -> type:
        """This sweep's trainer's config class; grok's when the trainer cannot be imported here (reading a
        sweep's results must not need the code that trained it)."""
        name = self.trainer()
        try:
            return load_trainer(name).TrainConfig if isinstance(name, str) else TrainConfig
        except BadInput:
            warn(f"{self.root}: its trainer {name!r} cannot be imported here; a field its runs store only when set "
                 "reads back with the grok trainer's default")
            return TrainConfig

    # ------------------------------------------------------------------ claims and leftovers
    def claim(self, batch_id: str) -> bool:
        return self.claims.claim(batch_id)

    def claim_is_stale(self, batch_id: str) -> bool:
        return self.claims.is_stale(batch_id)

    def claim_owner(self, batch_id: str) -> dict[str, Any] | None:
        return self.claims.owner(batch_id)

    def release(self, batch_id: str) -> None:
        self.claims.release(batch_id)

    def live_claims(self) -> list[str]:
        return self.claims.live()

    def clean_temp_files(self) -> int:
        """Delete temporaries left by killed writers (never a live writer's: :func:`clean_stale_temps`)."""
        return sum(clean_stale_temps(d) for d in (self.root, self.runs_dir, self.weights_dir, self.claims_dir))

    # ------------------------------------------------------------------ results.csv
    def write_results_csv(self, sort_keys: Iterable[str] = ()) -> Path:
        """Regenerate ``results.csv`` from the store: one row per run, every config field, the summary and
        IPR statistics; rows sorted by ``sort_keys`` (then all config fields, then run id)."""
        text = results_csv_text(self.records(), sort_keys)
        path = self.root / RESULTS_CSV
        atomic_write_text(path, text)
        return path


def _ours_before_manifest(name: str) -> bool:
    """Entries a sweep may hold before its manifest exists: a manifest being written, by any process."""
    m = TEMP_RE.match(name)
    return name == MANIFEST or (m is not None and m["name"] == MANIFEST)


def relabel_diverged(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Label Diverged the runs stored before that label existed: a phase of the paper with no final weight norm
    (NaN, stored as null) is a diverged run the rules read as Confusion."""
    for r in records:
        s = r.get("summary", {})
        if "weight_norm" in s and s["weight_norm"] is None and s.get("phase") in PHASES:
            r["summary"] = {**s, "phase": DIVERGED}
    return records


def complete_configs(records: list[dict[str, Any]], config_cls: type = TrainConfig) -> list[dict[str, Any]]:
    """Give every record the config keys another record of the sweep has: a run stores a field added later
    (``identity="when_set"``, e.g. ``init_scale``) only when it is not the default, so a grid over such a field
    that includes its default, or a sweep resumed across versions, would leave some records without the key
    (tables and panels need every key). The missing value is the default of ``config_cls``, the trainer's
    config."""
    keys = {k for r in records for k in r["config"]}
    defaults = when_set_defaults(config_cls)
    for r in records:
        for k in keys - r["config"].keys():
            if k in defaults:
                r["config"][k] = defaults[k]
    return records


def _sortable(v: Any) -> tuple:
    if v is None:
        return (0, 0, "")
    if isinstance(v, bool):
        return (1, int(v), "")
    if isinstance(v, (int, float)):
        return (1, v, "")
    return (2, 0, str(v))


def results_csv_text(records: list[Mapping[str, Any]], sort_keys: Iterable[str] = ()) -> str:
    """The CSV text for a list of run records (deterministic: sorted rows, fixed column order)."""
    sort_keys = list(sort_keys)
    cfg_cols: list[str] = []
    for r in records:
        for k in r["config"]:
            if k not in cfg_cols:
                cfg_cols.append(k)
    extra_summary = sorted({k for r in records for k in r.get("summary", {})} - set(SUMMARY_KEYS))
    summary_cols = _summary_columns(records, [*SUMMARY_KEYS, *extra_summary], set(cfg_cols))
    cols = ["run_id", *cfg_cols, *summary_cols.values(), *IPR_COLUMNS]
    order = sort_keys + [k for k in cfg_cols if k not in sort_keys]

    def key(r: Mapping[str, Any]) -> tuple:
        return (*(_sortable(r["config"].get(k)) for k in order), r["run_id"])

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in sorted(records, key=key):
        summary = r.get("summary", {})
        row = {"run_id": r["run_id"], **r["config"], **r.get("ipr", {}),
               **{col: summary.get(k) for k, col in summary_cols.items()}}
        w.writerow([fmt(row.get(c), "csv") for c in cols])
    return buf.getvalue()


def _summary_columns(records: list[Mapping[str, Any]], keys: list[str], config_cols: set[str]) -> dict[str, str]:
    """``{summary key: CSV column}``, every column name unique: a summary value that repeats a config field of
    the same name in every record (``steps``) is left to the config column; one that differs somewhere gets
    the column ``summary_<key>``."""
    out = {}
    for k in keys:
        if k not in config_cols:
            out[k] = k
        elif any(r.get("summary", {}).get(k, r["config"].get(k)) != r["config"].get(k) for r in records):
            out[k] = f"summary_{k}"
    return out


def read_results_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a results.csv as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def results_csv_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """A results.csv's rows as run records, in the shape :meth:`SweepStore.records` gives (config: the config
    columns, cells back to numbers and bools; summary: the phase), for tables and phase diagrams of a sweep whose
    per-run files are not at hand (the docs commit only results.csv and sweep.json)."""
    rows = read_results_csv(path)
    if not rows:
        return []
    cols = list(rows[0])
    if not {"train_acc", "phase", "alpha", "xi"} <= set(cols) or any(None in r.values() for r in rows):
        raise BadInput("results.csv", str(path), "a results.csv written by `forgetlab grok sweep` (config columns, "
                       "then train_acc ... phase, one cell per column in every row)")
    config_cols = [c for c in cols[:cols.index("train_acc")] if c != "run_id"]
    return relabel_diverged([{"config": {k: _cell(r[k]) for k in config_cols},
                              "summary": {"phase": r["phase"], "weight_norm": _cell(r.get("weight_norm", "0"))}}
                             for r in rows])


def _cell(text: str) -> Any:
    """A CSV cell back to a number or bool where it is one (``0.5`` -> 0.5; ``True`` as the CSV writes a bool,
    or ``true`` -> True; blank -> None)."""
    if text in ("True", "False"):
        return text == "True"
    return parse_cli_value(text) if text != "" else None
