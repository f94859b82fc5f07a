"""The sweep store: one JSON per finished run, a manifest, claim files, and ``results.csv``.

Layout of a sweep folder::

    sweep.json                 manifest: the spec and its hash (a folder holding another sweep is refused)
    runs/<run_id>.json         one finished run: config, summary, IPR statistics, optional history
    weights/<run_id>.safetensors   optional final weights (written before the run's JSON)
    claims/<batch_id>.json     a batch some live process is training (O_EXCL create; stale ones are taken)
    results.csv                regenerated from runs/ (sorted, deterministic)

A run exists once its JSON exists: the JSON is written by an atomic rename named by the run's hash, so a
killed writer leaves nothing (or a hidden temp file), and two writers of the same run write the same name.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...errors import BadInput, ForgetlabError
from ...fmt import fmt
from ...runs import (
    atomic_write_json,
    atomic_write_text,
    make_temp,
    read_json,
    save_tensors,
    to_jsonable,
    versions,
)
from ..config import SUMMARY_KEYS

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_start(pid: int) -> float | None:
    """Start time of a process (to tell a reused pid from the claimer), or None if unknown."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


class SweepStore:
    """A sweep folder. Open with :meth:`open`, which checks or writes the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.weights_dir = self.root / "weights"
        self.claims_dir = self.root / "claims"

    # ------------------------------------------------------------------ manifest
    @classmethod
    def open(cls, root: str | os.PathLike, spec_dict: Mapping[str, Any], spec_hash: str,
             n_runs: int) -> SweepStore:
        """Create the folder and manifest, or check that an existing manifest holds the same sweep.

        A folder with files but no manifest, or a manifest of another sweep, is refused naming the
        difference; creating the manifest is atomic and race-free (``os.link`` of a finished temp file).
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise BadInput("out", str(root), "a folder path (this is a file)")
        store = cls(root)
        manifest = {"kind": "forgetlab.grok.sweep", "spec_hash": spec_hash, "n_runs": n_runs,
                    "spec": dict(spec_dict), "versions": versions(),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        path = root / MANIFEST
        if not path.exists():
            if root.is_dir() and any(p.name != MANIFEST for p in root.iterdir()):
                raise BadInput("out", str(root), "an empty folder or a sweep folder (no sweep.json here, "
                               "but other files are)")
            try:
                root.mkdir(parents=True, exist_ok=True)
                for d in (store.runs_dir, store.claims_dir):
                    d.mkdir(exist_ok=True)
                tmp = make_temp(root, MANIFEST)
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
                    os.unlink(tmp)
            except OSError as exc:
                raise BadInput("out", str(root), f"a writable folder ({exc.strerror})") from None
        old = read_json(path)
        if not isinstance(old, dict) or old.get("kind") != "forgetlab.grok.sweep":
            raise BadInput("out", str(root), "a folder holding a forgetlab sweep (sweep.json is something else)")
        if old.get("spec_hash") != spec_hash:
            old_spec = {k: old.get("spec", {}).get(k) for k in ("fixed", "grid", "zip", "keep_history",
                                                                  "save_weights")}
            new_spec = {k: spec_dict.get(k) for k in old_spec}
            diff = _diff(to_jsonable(old_spec), to_jsonable(new_spec)) or ["spec hash differs"]
            raise BadInput("out", str(root), "a new folder, or one holding this same sweep; it holds "
                           "a different sweep (" + "; ".join(diff[:5]) + (" ..." if len(diff) > 5 else "")
                           + ")")
        for d in (store.runs_dir, store.claims_dir):
            d.mkdir(parents=True, exist_ok=True)
        return store

    def manifest(self) -> dict[str, Any]:
        return read_json(self.root / MANIFEST)

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

    def records(self) -> list[dict[str, Any]]:
        """All finished run records (read fresh from disk)."""
        out = []
        for rid in sorted(self.finished()):
            try:
                out.append(read_json(self.run_path(rid)))
            except ForgetlabError:  # cannot happen with atomic writes; treat as unfinished
                continue
        return out

    # ------------------------------------------------------------------ claims
    def _claim_path(self, batch_id: str) -> Path:
        return self.claims_dir / f"{batch_id}.json"

    def claim(self, batch_id: str) -> bool:
        """Claim a batch for this process; True if we hold it now. A claim by a dead process on this host
        (or by a reused pid) is taken over."""
        path = self._claim_path(batch_id)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()),
              "time": time.time()}
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                if not self.claim_is_stale(batch_id):
                    return False
                # Move the stale claim aside, then check what we moved: if a live process re-claimed it in
                # between, put its claim back (os.link never overwrites) and give way.
                grave = path.with_name(f".{path.name}.{os.getpid()}.stale")
                try:
                    os.replace(path, grave)
                except FileNotFoundError:
                    continue
                if not self._stale(self._read_owner(grave), grave):
                    try:
                        os.link(grave, path)
                    except FileExistsError:
                        pass
                    grave.unlink(missing_ok=True)
                    return False
                grave.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(me, fh)
            return True
        return False

    @staticmethod
    def _read_owner(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, OSError):
            return {}  # being written right now (or torn by a kill): judged by age

    def claim_owner(self, batch_id: str) -> dict[str, Any] | None:
        """The claim's owner record, None if unclaimed, {} if unreadable."""
        return self._read_owner(self._claim_path(batch_id))

    def claim_is_stale(self, batch_id: str) -> bool:
        """True if the batch's claim is missing or its owner is gone (see :meth:`_stale`)."""
        path = self._claim_path(batch_id)
        return self._stale(self._read_owner(path), path)

    @staticmethod
    def _stale(owner: dict[str, Any] | None, path: Path, max_age_s: float = 24 * 3600) -> bool:
        """A claim is stale if its owner is gone: a dead pid on this host, a reused pid (other start time),
        an unreadable claim older than 10 s, or (other hosts) a claim older than ``max_age_s``."""
        if owner is None:
            return True
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        if not owner:
            return age > 10
        if owner.get("host") != socket.gethostname():
            return age > max_age_s
        pid = int(owner.get("pid", -1))
        if pid == os.getpid():
            return False
        if not _pid_alive(pid):
            return True
        start, now_start = owner.get("start"), _process_start(pid)
        return start is not None and now_start is not None and abs(start - now_start) > 1e-3

    def release(self, batch_id: str) -> None:
        self._claim_path(batch_id).unlink(missing_ok=True)

    def live_claims(self) -> list[str]:
        if not self.claims_dir.is_dir():
            return []
        return [p.stem for p in self.claims_dir.glob("*.json")
                if not p.name.startswith(".") and not self.claim_is_stale(p.stem)]

    def clean_temp_files(self) -> int:
        """Delete hidden temp files left by killed writers (only call when no live claims remain)."""
        n = 0
        for d in (self.root, self.runs_dir, self.weights_dir, self.claims_dir):
            if d.is_dir():
                for p in d.glob(".*"):
                    if p.name.endswith((".tmp", ".stale")):
                        p.unlink(missing_ok=True)
                        n += 1
        return n

    # ------------------------------------------------------------------ results.csv
    def write_results_csv(self, sort_keys: Iterable[str] = ()) -> Path:
        """Regenerate ``results.csv`` from the store: one row per run, every config field, the summary and
        IPR statistics; rows sorted by ``sort_keys`` (then all config fields, then run id)."""
        text = results_csv_text(self.records(), sort_keys)
        path = self.root / RESULTS_CSV
        atomic_write_text(path, text)
        return path


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
