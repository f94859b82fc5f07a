"""`forgetlab reproduce`: both papers' headline results, measured now, beside the authors' numbers.

The job is a list of stages (grokking cases, a reduced phase diagram, the ECO benchmark). Each stage returns a
:class:`StageResult` (claims with bands, figures, every number) that is cached in ``DIR/stages/NAME/stage.json``
under a key of its settings and the package's source, so a re-run reuses finished stages. The report
(``report.md``, a self-contained ``report.html`` and ``results.json``) is rendered only from those results:
no number in it is typed in by hand, except the authors' numbers, each cited with its source.
"""

from __future__ import annotations

import base64
import hashlib
import html
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput, ForgetlabError
from .runs import atomic_write_json, atomic_write_text, read_json, versions

SCALES = ("small", "paper")
PAPERS = {
    "grok": "To grok or not to grok: disentangling generalization and memorization on corrupted algorithmic "
    "datasets (Doshi, Das, He, Gromov, ICLR 2024, arXiv 2310.13061)",
    "eco": "Large language model unlearning via embedding-corrupted prompts (Liu, Yao, Li, Liu, NeurIPS 2024, "
    "arXiv 2406.07933)",
}


@dataclass
class Claim:
    """One checked statement: the authors' number (with its source), ours, the band ours must fall in."""

    paper: str
    case: str
    quantity: str
    authors: str
    source: str
    ours: str
    band: str
    passed: bool
    miss: str = ""  # by how much a failed claim misses its band, in words


@dataclass
class Figure:
    """A PNG written by a stage, as a path relative to the report folder, with its caption."""

    path: str
    caption: str


@dataclass
class StageResult:
    """What a stage measured: claims, figures, all numbers, its wall time and the commands to redo it."""

    name: str
    title: str
    paper: str
    claims: list[Claim] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    commands: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    cached: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageResult:
        data = dict(data)
        data["claims"] = [Claim(**c) for c in data.get("claims", [])]
        data["figures"] = [Figure(**f) for f in data.get("figures", [])]
        return cls(**data)


# A stage runner gets (its own folder, the scale, a progress callback taking a fraction in [0, 1]).
StageRunner = Callable[[Path, str, Callable[[float], None]], StageResult]


@dataclass(frozen=True)
class Stage:
    """A named part of the job with an estimate of its wall time on 2 CPU cores (for the ETA)."""

    name: str
    paper: str
    title: str
    estimate_seconds: dict[str, float]
    run: StageRunner


STAGES: dict[str, Stage] = {}


def stage(name: str, paper: str, title: str, small_s: float, paper_s: float) -> Callable[[StageRunner], StageRunner]:
    """Register a stage runner under ``name`` (in run order)."""

    def wrap(fn: StageRunner) -> StageRunner:
        STAGES[name] = Stage(name, paper, title, {"small": small_s, "paper": paper_s}, fn)
        return fn

    return wrap


def source_digest() -> str:
    """SHA-256 over the package's Python sources: a cached stage is reused only for the same code."""
    root = Path(__file__).resolve().parent
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
    """Stages to run: all, or those of one paper (``grok`` or ``eco``)."""
    if only is None:
        return list(STAGES.values())
    if only not in PAPERS:
        raise BadInput("only", only, "one of " + ", ".join(PAPERS))
    return [s for s in STAGES.values() if s.paper == only]


def run_stages(out: Path, stages: list[Stage], scale: str, *, quiet: bool = False) -> list[StageResult]:
    """Run (or reuse) each stage under one progress display with an overall and a per-stage ETA."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    digest = source_digest()
    results: list[StageResult] = []
    total = sum(s.estimate_seconds[scale] for s in stages)
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, disable=quiet, transient=False) as bar:
        overall = bar.add_task("reproduce", total=total)
        done_before = 0.0
        for st in stages:
            folder = out / "stages" / st.name
            key = stage_key(st.name, scale, digest)
            est = st.estimate_seconds[scale]
            task = bar.add_task(f"  {st.title}", total=1.0)
            cached = load_cached(folder, key)
            if cached is not None:
                results.append(cached)
                bar.update(task, completed=1.0, description=f"  {st.title} (cached)")
            else:
                folder.mkdir(parents=True, exist_ok=True)

                def advance(frac: float, _task=task, _base=done_before, _est=est) -> None:
                    frac = min(max(frac, 0.0), 1.0)
                    bar.update(_task, completed=frac)
                    bar.update(overall, completed=_base + frac * _est)

                t0 = time.perf_counter()
                result = st.run(folder, scale, advance)
                result.seconds = time.perf_counter() - t0
                prefix = f"stages/{st.name}/"
                for fig in result.figures:
                    if not fig.path.startswith("stages/"):
                        fig.path = prefix + fig.path
                atomic_write_json(folder / "stage.json", {"key": key, "result": asdict(result)})
                results.append(result)
                bar.update(task, completed=1.0)
            done_before += est
            bar.update(overall, completed=done_before)
    return results


# ---------------------------------------------------------------------------------------------- rendering
def _claims_table_md(claims: list[Claim]) -> list[str]:
    rows = ["| case | quantity | authors (source) | ours | band | result |", "|---|---|---|---|---|---|"]
    for c in claims:
        verdict = "pass" if c.passed else f"**FAIL** ({c.miss})" if c.miss else "**FAIL**"
        rows.append(f"| {c.case} | {c.quantity} | {c.authors} ({c.source}) | {c.ours} | {c.band} | {verdict} |")
    return rows


def render_markdown(results: list[StageResult], meta: dict[str, Any]) -> str:
    """The report as Markdown, figures linked by relative path."""
    claims = [c for r in results for c in r.claims]
    failed = [c for c in claims if not c.passed]
    lines = ["# forgetlab reproduce", "",
             f"{len(claims) - len(failed)} of {len(claims)} claims inside their bands "
             f"({'all pass' if not failed else str(len(failed)) + ' missed'}); "
             f"scale `{meta['scale']}`, total wall time {meta['seconds']:.0f} s.", ""]
    if failed:
        lines += ["## Missed claims", ""]
        lines += [f"- {c.case} {c.quantity}: ours {c.ours}, band {c.band}: {c.miss or 'outside the band'}"
                  for c in failed]
        lines.append("")
    for paper, title in PAPERS.items():
        paper_results = [r for r in results if r.paper == paper]
        if not paper_results:
            continue
        lines += [f"## {title}", "", "### Summary", ""]
        lines += _claims_table_md([c for r in paper_results for c in r.claims])
        lines.append("")
        for r in paper_results:
            lines += [f"### {r.title}", "", f"Wall time {r.seconds:.1f} s{' (cached)' if r.cached else ''}."]
            lines += [""] + [f"![{f.caption}]({f.path})\n\n*{f.caption}*\n" for f in r.figures]
    lines += ["## How this was made", "", "Commands:", ""]
    lines += [f"    {c}" for c in meta["commands"]] + [""]
    lines += ["| stage | wall time (s) | cached | seeds |", "|---|---|---|---|"]
    lines += [f"| {r.title} | {r.seconds:.1f} | {'yes' if r.cached else 'no'} | "
              f"{', '.join(map(str, r.seeds)) or '-'} |" for r in results]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), ""]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1b1f24;line-height:1.45}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #d0d7de;padding:.35em .6em;
text-align:left;vertical-align:top}th{background:#f6f8fa}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:700}
.banner{padding:.8em 1em;border-radius:6px;margin:1em 0}.ok{background:#dafbe1}.bad{background:#ffebe9}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #d0d7de}figcaption{color:#57606a;font-size:.9em}
code,pre{background:#f6f8fa;border-radius:4px;padding:.1em .3em}pre{padding:.8em;overflow-x:auto}
"""


def _img_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(results: list[StageResult], meta: dict[str, Any], root: Path) -> str:
    """The report as one self-contained HTML page: CSS inline, figures embedded as data URIs."""
    esc = html.escape
    claims = [c for r in results for c in r.claims]
    failed = [c for c in claims if not c.passed]
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>forgetlab reproduce</title><style>{_CSS}</style></head><body>",
             "<h1>forgetlab reproduce</h1>",
             f"<div class='banner {'ok' if not failed else 'bad'}'>{len(claims) - len(failed)} of {len(claims)} "
             f"claims inside their bands; scale <code>{esc(meta['scale'])}</code>; total wall time "
             f"{meta['seconds']:.0f} s.</div>"]
    if failed:
        parts.append("<h2>Missed claims</h2><ul>")
        parts += [f"<li>{esc(c.case)} {esc(c.quantity)}: ours {esc(c.ours)}, band {esc(c.band)}: "
                  f"{esc(c.miss or 'outside the band')}</li>" for c in failed]
        parts.append("</ul>")
    for paper, title in PAPERS.items():
        paper_results = [r for r in results if r.paper == paper]
        if not paper_results:
            continue
        parts += [f"<h2>{esc(title)}</h2>", "<table><tr><th>case</th><th>quantity</th><th>authors</th>"
                  "<th>source</th><th>ours</th><th>band</th><th>result</th></tr>"]
        for r in paper_results:
            for c in r.claims:
                verdict = ("<span class='pass'>pass</span>" if c.passed else
                           f"<span class='fail'>FAIL</span> {esc(c.miss)}")
                parts.append(f"<tr><td>{esc(c.case)}</td><td>{esc(c.quantity)}</td><td>{esc(c.authors)}</td>"
                             f"<td>{esc(c.source)}</td><td>{esc(c.ours)}</td><td>{esc(c.band)}</td>"
                             f"<td>{verdict}</td></tr>")
        parts.append("</table>")
        for r in paper_results:
            parts.append(f"<h3>{esc(r.title)}</h3><p>Wall time {r.seconds:.1f} s"
                         f"{' (cached)' if r.cached else ''}.</p>")
            for f in r.figures:
                parts.append(f"<figure><img src='{_img_data_uri(root / f.path)}' alt='{esc(f.caption)}'>"
                             f"<figcaption>{esc(f.caption)}</figcaption></figure>")
    parts.append("<h2>How this was made</h2><pre>" + esc("\n".join(meta["commands"])) + "</pre>")
    parts.append("<table><tr><th>stage</th><th>wall time (s)</th><th>cached</th><th>seeds</th></tr>")
    parts += [f"<tr><td>{esc(r.title)}</td><td>{r.seconds:.1f}</td><td>{'yes' if r.cached else 'no'}</td>"
              f"<td>{esc(', '.join(map(str, r.seeds)) or '-')}</td></tr>" for r in results]
    parts.append("</table><p>Versions: " + esc(", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
                 + "</p></body></html>")
    return "\n".join(parts)


def write_report(out: Path, results: list[StageResult], meta: dict[str, Any]) -> dict[str, Path]:
    """Write report.md, report.html and results.json atomically; return their paths."""
    paths = {"md": out / "report.md", "html": out / "report.html", "json": out / "results.json"}
    atomic_write_text(paths["md"], render_markdown(results, meta))
    atomic_write_text(paths["html"], render_html(results, meta, out))
    claims = [asdict(c) for r in results for c in r.claims]
    atomic_write_json(paths["json"], {"meta": meta, "passed": all(c["passed"] for c in claims),
                                      "claims": claims, "stages": [asdict(r) for r in results]})
    return paths


def prepare_report_dir(out: Path) -> Path:
    """Accept a new or empty folder, or one holding an earlier reproduce (its cache is reused)."""
    if out.exists() and not out.is_dir():
        raise BadInput("out", str(out), "a folder path (this is a file)")
    if out.is_dir() and any(out.iterdir()) and not (out / "stages").is_dir():
        raise BadInput("out", str(out), "an empty folder or one written by an earlier `forgetlab reproduce`")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput("out", str(out), f"a writable folder ({exc.strerror})") from None
    return out


def reproduce(out: str | Path, scale: str = "small", only: str | None = None, quiet: bool = False,
              argv: list[str] | None = None) -> tuple[list[StageResult], dict[str, Path]]:
    """Run the whole job and write the report; returns the stage results and the report's paths."""
    from . import reproduce_stages  # noqa: F401  (registers the stages)

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


def register(app: Any) -> None:
    """Add the `reproduce` command to the top-level typer app."""
    import typer

    @app.command("reproduce")
    def reproduce_cmd(
        out: Path = typer.Option(Path("out/reproduce"), "--out", help="Report folder (reused as a cache)."),
        scale: str = typer.Option("small", "--scale", help="small (a laptop, <= 20 min) or paper (full sizes)."),
        only: str | None = typer.Option(None, "--only", help="Only one paper: grok or eco."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress display."),
    ) -> None:
        """Reproduce both papers' headline results and write report.md, report.html and results.json."""
        results, paths = reproduce(out, scale, only, quiet)
        claims = [c for r in results for c in r.claims]
        failed = [c for c in claims if not c.passed]
        print(f"{len(claims) - len(failed)}/{len(claims)} claims pass; report: {paths['html']}")
        for c in failed:
            print(f"MISSED {c.case} {c.quantity}: ours {c.ours}, band {c.band} ({c.miss})")
        if failed:
            raise typer.Exit(1)

