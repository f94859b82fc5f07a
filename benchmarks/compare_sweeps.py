"""Compare two sweep folders run by run (issue 3: `--backend ray` vs `--backend local` at acceptance size).

    .venv/bin/python benchmarks/compare_sweeps.py out/sweep-wd47 out/sweep-wd47-local-subset

Rows are matched by ``run_id`` (a hash of the run's full config, so the same run in two sweeps has the same id).
For the runs both folders hold, prints how many have the same phase and the same accuracies, and the largest
relative difference of every other numeric column (``seconds`` excluded: wall time is the only column allowed
to differ). Two folders whose runs were batched differently can differ by float round-off (a batched run
equals its solo run to ~1e-5 relative, not bit for bit); identical batches give identical numbers.
Exit status 1 when a phase or an accuracy differs, 2 when a folder has no results.csv.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

ACCURACIES = ("train_acc", "test_acc", "corrupted_acc", "clean_acc", "inversion_acc")
SKIP = {"run_id", "seconds", "phase"}


def read_rows(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / "results.csv"
    if not path.is_file():
        print(f"{path}: no results.csv (run the sweep first)", file=sys.stderr)
        sys.exit(2)
    with path.open(newline="") as fh:
        return {r["run_id"]: r for r in csv.DictReader(fh)}


def rel_diff(a: str, b: str) -> float | None:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return None if a == b else math.inf
    if x == y or (math.isnan(x) and math.isnan(y)):
        return 0.0
    return abs(x - y) / max(abs(x), abs(y), 1e-12)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args()
    a, b = read_rows(args.a), read_rows(args.b)
    shared = sorted(set(a) & set(b))
    print(f"{args.a}: {len(a)} runs; {args.b}: {len(b)} runs; {len(shared)} in both")
    if not shared:
        sys.exit(1)
    same_phase = sum(a[r]["phase"] == b[r]["phase"] for r in shared)
    same_acc = sum(all(a[r].get(c) == b[r].get(c) for c in ACCURACIES) for r in shared)
    print(f"same phase: {same_phase}/{len(shared)}; identical accuracies: {same_acc}/{len(shared)}")
    worst: dict[str, float] = {}
    for r in shared:
        for col in a[r]:
            if col in SKIP or col not in b[r]:
                continue
            d = rel_diff(a[r][col], b[r][col])
            if d is not None:
                worst[col] = max(worst.get(col, 0.0), d)
    for col, d in sorted(worst.items(), key=lambda kv: -kv[1]):
        if d > 0:
            print(f"  max relative difference {col}: {d:.2e}")
    if all(d == 0 for d in worst.values()):
        print("  every compared column identical")
    sys.exit(0 if same_phase == len(shared) and same_acc == len(shared) else 1)


if __name__ == "__main__":
    main()
