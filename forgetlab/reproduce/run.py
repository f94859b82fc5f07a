"""Running ``forgetlab reproduce``: stages in order, each cached under a key of its scale and the package source.

A stage's result is cached in ``DIR/stages/NAME/stage.json``; a re-run with the same code and scale reuses it.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..errors import BadInput, ForgetlabError
from ..progress import Tasks
from ..runs import atomic_write_json, is_empty_folder, read_json, versions
from . import stage
from .render import write_report
from .stage import PAPERS, SCALES, Stage, StageResult


def source_digest() -> str:
    """SHA-256 over the package's Python sources: a cached stage is reused only for the same code."""
    root = Path(__file__).resolve().parent.parent  # the forgetlab package
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def stage_key(stage_name: str, scale: str, digest: str) -> str:
    """The cache key of one stage's result."""
    return hashlib.sha256(f"{stage_name}|{scale}|{digest}".encode()).hexdigest()[:16]


def load_cached(folder: Path, key: str) -> StageResult | None:
    """The cached result in ``folder`` if it was made with ``key``, else None."""
    path = folder / "stage.json"
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except ForgetlabError:
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("result"), dict):
        return None
    try:
        result = StageResult.from_json(data["result"])
    except (KeyError, TypeError):  # a damaged or older cache entry: recompute the stage
        return None
    result.cached = True
    return result


def select_stages(only: str | None) -> list[Stage]:
    """Stages to run, in order: all, those of one paper (``grok`` or ``eco``), or one stage by name."""
    names = stage.STAGES.in_order()
    if only is not None and only not in PAPERS and only not in names:
        raise BadInput("only", only, "a paper (" + ", ".join(PAPERS) + ") or a stage (" + ", ".join(names) + ")")
    stages = [stage.STAGES.get(name) for name in names]
    return [s for s in stages if only is None or only in (s.paper, s.name)]


def run_stages(out: Path, stages: list[Stage], scale: str, *, quiet: bool = False) -> list[StageResult]:
    """Run (or reuse) each stage under one progress display with an overall and a per-stage ETA."""
    digest = source_digest()
    results: list[StageResult] = []
    total = sum(s.estimate_seconds[scale] for s in stages)
    with Tasks(not quiet, percent=True) as bar:
        done_before = 0.0
        for st in stages:
            est = st.estimate_seconds[scale]

            def advance(frac: float, _st=st, _base=done_before, _est=est) -> None:
                frac = min(max(frac, 0.0), 1.0)
                bar.update(f"  {_st.title}", frac, 1.0)
                bar.update("reproduce", _base + frac * _est, total)

            bar.update("reproduce", done_before, total)
            results.append(_run_stage(out, st, scale, digest, advance))
            done_before += est
            bar.update("reproduce", done_before, total)
    return results


def _run_stage(out: Path, st: Stage, scale: str, digest: str, advance: Callable[[float], None]) -> StageResult:
    """One stage's result: from the cache when made with the same key, else run now and cached."""
    folder = out / "stages" / st.name
    key = stage_key(st.name, scale, digest)
    cached = load_cached(folder, key)
    if cached is not None:
        advance(1.0)
        return cached
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = st.run(folder, scale, advance)
    result.seconds = time.perf_counter() - t0
    for fig in result.figures:
        if not fig.path.startswith("stages/"):
            fig.path = f"stages/{st.name}/" + fig.path
    atomic_write_json(folder / "stage.json", {"key": key, "result": asdict(result)})
    advance(1.0)
    return result


def prepare_report_dir(out: Path) -> Path:
    """Accept a new or empty folder, or one holding an earlier reproduce (its cache is reused)."""
    if out.exists() and not out.is_dir():
        raise BadInput("out", str(out), "a folder path (this is a file)")
    if out.is_dir() and not is_empty_folder(out) and not (out / "stages").is_dir():
        raise BadInput("out", str(out), "an empty folder or one written by an earlier `forgetlab reproduce`")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput("out", str(out), f"a writable folder ({exc.strerror})") from None
    return out


def reproduce(out: str | Path, scale: str = "small", only: str | None = None, quiet: bool = False,
              argv: list[str] | None = None) -> tuple[list[StageResult], dict[str, Path]]:
    """Run the whole job and write the report; returns the stage results and the report's paths."""
    if scale not in SCALES:
        raise BadInput("scale", scale, "one of " + ", ".join(SCALES))
    stages = select_stages(only)
    out = prepare_report_dir(Path(out))
    t0 = time.perf_counter()
    results = run_stages(out, stages, scale, quiet=quiet)
    command = "forgetlab " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    meta = {"scale": scale, "only": only, "seconds": time.perf_counter() - t0, "versions": versions(),
            "commands": [command] + [c for r in results for c in r.commands],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return results, write_report(out, results, meta)
