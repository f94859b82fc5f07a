"""``forgetlab reproduce``: both papers' headline results, measured now, beside the authors' numbers."""

from __future__ import annotations

from pathlib import Path

import typer

from .stage import SCALES


def reproduce_command(
    out: Path = typer.Option(Path("out/reproduce"), "--out", help="Report folder (reused as a cache)."),
    scale: str = typer.Option("small", "--scale", help="One of " + ", ".join(SCALES) + ": small (a laptop, "
                              "<= 20 min on 2 cores), paper (the papers' sizes), smoke (tiny sizes, pipeline check)."),
    only: str | None = typer.Option(None, "--only", help="Only one paper (grok, eco) or one stage (grok_cases, "
                                    "grok_arch, grok_phases, eco_bench)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display."),
) -> None:
    """Reproduce both papers' headline results and write report.md, report.html and results.json."""
    from .run import reproduce

    results, paths = reproduce(out, scale, only, quiet)
    claims = [c for r in results for c in r.claims]
    failed = [c for c in claims if not c.passed]
    print(f"{len(claims) - len(failed)}/{len(claims)} claims pass; report: {paths['html']}")
    for c in failed:
        print(f"MISSED {c.case} {c.quantity}: ours {c.ours}, band {c.band} ({c.miss})")
    for r in results:
        if r.not_run:
            print(f"NOT RUN {r.title}: {r.not_run} To run it: {'; '.join(r.commands)}")
    if failed:
        raise typer.Exit(1)
