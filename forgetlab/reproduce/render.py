"""The reproduction report, rendered only from stage results: ``report.md``, a self-contained ``report.html``
(CSS inline, figures as data URIs) and ``results.json``."""

from __future__ import annotations

import base64
import html
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..runs import atomic_write_json, atomic_write_text
from .stage import PAPERS, Claim, StageResult


def _claims_table_md(claims: list[Claim]) -> list[str]:
    rows = ["| case | quantity | authors (source) | ours | band | result |", "|---|---|---|---|---|---|"]
    for c in claims:
        verdict = "pass" if c.passed else f"**FAIL** ({c.miss})" if c.miss else "**FAIL**"
        rows.append(f"| {c.case} | {c.quantity} | {c.authors} ({c.source}) | {c.ours} | {c.band} | {verdict} |")
    return rows


def _not_run_note(results: list[StageResult]) -> str:
    """"; not run at this scale: A, B" for stages that did not run (their sections say how to run them)."""
    skipped = [r.title for r in results if r.not_run]
    return "; not run at this scale: " + ", ".join(skipped) if skipped else ""


def render_markdown(results: list[StageResult], meta: dict[str, Any]) -> str:
    """The report as Markdown, figures linked by relative path."""
    claims = [c for r in results for c in r.claims]
    failed = [c for c in claims if not c.passed]
    lines = ["# forgetlab reproduce", "",
             f"{len(claims) - len(failed)} of {len(claims)} claims inside their bands "
             f"({'all pass' if not failed else str(len(failed)) + ' missed'}); "
             f"scale `{meta['scale']}`, total wall time {meta['seconds']:.0f} s{_not_run_note(results)}.", ""]
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
            if r.not_run:
                lines += ["", f"**Not run:** {r.not_run} To run it: " + "; ".join(f"`{c}`" for c in r.commands)
                          + "."]
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
             f"{meta['seconds']:.0f} s{esc(_not_run_note(results))}.</div>"]
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
            if r.not_run:
                parts.append(f"<p><strong>Not run:</strong> {esc(r.not_run)} To run it: "
                             + "; ".join(f"<code>{esc(c)}</code>" for c in r.commands) + ".</p>")
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
