"""Compare two ``forgetlab reproduce`` results.json files: every claim and number, ignoring wall times,
timestamps and versions (a structural change must leave them identical).

    python benchmarks/compare_reproduce.py BEFORE/results.json AFTER/results.json
"""
import json
import math
import sys

IGNORE = {"seconds", "started", "finished", "versions", "cached", "load_or_train_seconds", "commands", "timings",
          "sweep_seconds", "meta", "written_by", "platform", "path"}
def walk(a, b, path, diffs):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in IGNORE:
                continue
            if k not in a or k not in b:
                diffs.append(f"{path}.{k}: only in {'after' if k not in a else 'before'}")
                continue
            walk(a[k], b[k], f"{path}.{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            walk(x, y, f"{path}[{i}]", diffs)
    elif a != b and not (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
        diffs.append(f"{path}: {a!r} vs {b!r}")
before, after = (json.load(open(p)) for p in sys.argv[1:3])
diffs = []
walk(before, after, "", diffs)
n_claims = len(before["claims"])
same_claims = sum(x == y for x, y in zip(before["claims"], after["claims"], strict=False))
print(f"claims: {n_claims} before, {len(after['claims'])} after, {same_claims} identical (every field); "
      f"passed before {before['passed']}, after {after['passed']}")
print(f"{len(diffs)} differing values outside wall times:")
for d in diffs[:40]:
    print("  ", d)
