"""The Markdown table of a `forgetlab grok reproduce` run, from its ``reproduce.json`` (docs/benchmarks/grok.md).

    .venv/bin/python benchmarks/grok_cases_table.py docs/benchmarks/results/grok_reproduce.json

The run's own ``reproduce.md`` is the same table; this prints it from the results file committed beside the doc,
without the title line, so that benchmarks/regen_docs.py keeps the doc equal to the run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

from forgetlab.grok.cases import CaseResult, markdown_table


def main(argv: list[str] | None = None) -> int:
    """Print the table of the results file given as the one argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: grok_cases_table.py REPRODUCE_JSON", file=sys.stderr)
        return 2
    rec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    keep = {f.name for f in fields(CaseResult)}
    results = [CaseResult(**{k: v for k, v in c.items() if k in keep}) for c in rec["cases"]]
    print(markdown_table(results).split("\n", 2)[2], end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
