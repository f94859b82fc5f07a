"""``forgetlab reproduce``: both papers' headline results, measured now, beside the authors' numbers."""

from __future__ import annotations

from pathlib import Path

import typer

from ..output import emit, status
from .stage import SCALES


def reproduce_command(
    out: Path = typer.Option(Path("out/reproduce"), "--out", help="Report folder (reused as a cache)."),
    scale: str = typer.Option("small", "--scale", help="One of " + ", ".join(SCALES) + ": small (a laptop, "
                              "<= 20 min on 2 cores), paper (the papers' sizes), smoke (tiny sizes, pipeline check)."),
    only: str | None = typer.Option(None, "--only", help="Only one paper (grok, eco) or one stage (grok_cases, "
                                    "grok_arch, grok_phases, eco_bench) (default: everything)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display or status lines on stderr."),
) -> None:
    """Reproduce both papers' headline results and write report.md, report.html and results.json.

    Prints one JSON object on stdout: claims passed, the missed ones, and the report files; exit 1 if a claim
    is missed."""
    from ..folders import claim_out_dir
    from .run import reproduce

    with claim_out_dir(out, resume=True):  # the report folder is reused as a cache: one writer at a time
        results, paths = reproduce(out, scale, only, quiet)
    claims = [c for r in results for c in r.claims]
    failed = [c for c in claims if not c.passed]
    say = status(not quiet)
    say(f"{len(claims) - len(failed)}/{len(claims)} claims pass; report: {paths['html']}")
    for c in failed:
        say(f"MISSED {c.case} {c.quantity}: ours {c.ours}, band {c.band} ({c.miss})")
    not_run = [r for r in results if r.not_run]
    for r in not_run:
        say(f"NOT RUN {r.title}: {r.not_run} To run it: {'; '.join(r.commands)}")
    emit({"claims": len(claims), "passed": len(claims) - len(failed), "files": {k: str(v) for k, v in paths.items()},
          "missed": [{"case": c.case, "quantity": c.quantity, "ours": c.ours, "band": c.band, "miss": c.miss}
                     for c in failed],
          "not_run": [{"stage": r.name, "reason": r.not_run, "commands": list(r.commands)} for r in not_run]})
    if failed:
        raise typer.Exit(1)
