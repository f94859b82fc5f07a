"""The demo phase panel's claims (`make demo`, stage grok_phases) checked on a committed sweep, as Markdown.

    .venv/bin/python benchmarks/demo_claims_table.py docs/benchmarks/phases/demo_wd_p41

Counts each panel's phases from the sweep's ``results.csv`` (:func:`forgetlab.grok.sweep.tables.phase_counts`)
and prints every claim of :func:`forgetlab.reproduce.stages.grok_phases.demo_claims` with its band, the sweep's
figure and the verdict, so docs/benchmarks/phases.md shows what the demo checks without a hand-typed number.
"""

from __future__ import annotations

import sys

from forgetlab.errors import ForgetlabError
from forgetlab.grok.sweep.tables import phase_counts
from forgetlab.reproduce.stages.grok_phases import demo_claims


def main(argv: list[str] | None = None) -> int:
    """Print the claims table of the sweep folder given as the one argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: demo_claims_table.py SWEEP_DIR", file=sys.stderr)
        return 2
    try:
        _keys, counts = phase_counts(args[0])
    except ForgetlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("| claim | band | this run | pass |")
    print("|---|---|---|---|")
    for c in demo_claims({label: dict(n) for label, n in counts.items()}):
        print(f"| {c.quantity} | {c.band} | {c.ours} | {'yes' if c.passed else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
