"""Where finished grok runs were along their training: the phase at chosen logged steps, as one Markdown table.

    .venv/bin/python benchmarks/grok_timeline.py --steps 0,1000,2000,3000 docs/benchmarks/grok_arch_p97/T3/seed1

Each folder holds a run's ``config.json`` and ``history.jsonl``. One row per (folder, step): train and test
accuracy, the corrupted training examples memorized and inverted (percent), the weight norm over its initial
value, and the phase the rule of :mod:`forgetlab.grok.phases` gives those numbers at that step (so a run that stays
in Confusion for a thousand steps before it inverts shows it). A step that was not logged, or a folder without
a finished run, is a one-line error with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from forgetlab.errors import ForgetlabError
from forgetlab.grok.phases import classify_phase, is_collapsed
from forgetlab.grok.record import load_config
from forgetlab.runs import iter_jsonl

HEAD = ["run", "step", "train %", "test %", "corrupted memorized %", "corrupted inverted %",
        "norm / initial", "phase"]


def rows(folder: Path, steps: list[int]) -> list[list[str]]:
    """The table rows of one run folder at ``steps`` (each must be a logged step)."""
    config = load_config(folder)
    logged = {rec["step"]: rec for _, rec in iter_jsonl(folder / "history.jsonl", field="runs")}
    if 0 not in logged:
        raise ForgetlabError(f"{folder}: history.jsonl has no step 0")
    norm0 = logged[0]["weight_norm"]
    out = []
    for step in steps:
        if step not in logged:
            raise ForgetlabError(f"{folder}: step {step} was not logged (logged: {min(logged)} to "
                                 f"{max(logged)}, every {config.log_every} steps)")
        r = logged[step]
        phase = classify_phase(r["train_acc"], r["test_acc"], config.xi, is_collapsed(r["weight_norm"], None, norm0))
        pct = [f"{100 * r[k]:.1f}" for k in ("train_acc", "test_acc", "corrupted_acc", "inversion_acc")]
        out.append([f"{folder.parent.name}/{folder.name}", str(step), *pct, f"{r['weight_norm'] / norm0:.2f}",
                    phase])
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the timeline table of the run folders given as arguments."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", required=True, help="comma-separated logged steps, e.g. 0,1000,2000")
    ap.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    args = ap.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        print(f"error: steps: got {args.steps!r}; allowed: comma-separated integers", file=sys.stderr)
        return 2
    try:
        table = [r for folder in args.runs for r in rows(folder, steps)]
    except (ForgetlabError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("| " + " | ".join(HEAD) + " |")
    print("|" + "---|" * len(HEAD))
    for r in table:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
