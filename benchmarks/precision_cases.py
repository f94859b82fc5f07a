"""The paper's cases trained in fp32 and with the opt-in bf16 matmuls, side by side (docs/benchmarks/grok.md).

    .venv/bin/python benchmarks/precision_cases.py FP32_REPRODUCE_JSON BF16_REPRODUCE_JSON

Both files are ``reproduce.json`` of ``forgetlab grok reproduce`` runs of the same cases, the second with
``--matmul-precision bf16``. One row per case: its phase, train and test accuracy and verdict in each precision,
and whether the phase and the verdict agree. Prints Markdown for benchmarks/regen_docs.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _cases(path: str) -> dict[str, dict[str, Any]]:
    """The run's cases by name."""
    return {c["name"]: c for c in json.loads(Path(path).read_text(encoding="utf-8"))["cases"]}


def _cell(case: dict[str, Any]) -> list[str]:
    """Phase, train %, test % and verdict of one case (blank where the case trains no network)."""
    ours = case["ours"]
    phase = str(ours.get("phase", ""))
    acc = [f"{100 * ours[k]:.2f}" if isinstance(ours.get(k), float) else "" for k in ("train_acc", "test_acc")]
    return [phase, *acc, "yes" if case["passed"] else "NO"]


def table(fp32: dict[str, dict[str, Any]], bf16: dict[str, dict[str, Any]]) -> str:
    """Markdown rows of the cases both runs hold, in the fp32 run's order."""
    head = ("| case | fp32 phase | fp32 train % | fp32 test % | fp32 pass | bf16 phase | bf16 train % | bf16 test % "
            "| bf16 pass | same phase and verdict |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    same, trained = 0, 0
    shared = [name for name in fp32 if name in bf16]
    for name in shared:
        a, b = _cell(fp32[name]), _cell(bf16[name])
        agree = a[0] == b[0] and a[3] == b[3]
        trained += bool(a[0])
        same += agree and bool(a[0])
        lines.append("| " + " | ".join([name, *a, *b, "yes" if agree else "NO"]) + " |")
    lines.append("")
    lines.append(f"Same phase and verdict in {same} of {trained} cases that train a network (the other "
                 f"{len(shared) - trained}, analytic or pruning checks without a phase, compared by verdict only).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the table of the two results files given as arguments."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: precision_cases.py FP32_REPRODUCE_JSON BF16_REPRODUCE_JSON", file=sys.stderr)
        return 2
    print(table(_cases(args[0]), _cases(args[1])), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
