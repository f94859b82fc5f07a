"""The unlearning bench's headline table for docs/benchmarks.md, from a bench ``results.json``.

    python benchmarks/unlearning_headline.py docs/benchmarks/unlearning/results.json
    python benchmarks/unlearning_headline.py --more RESULTS_JSON   # also ROUGE, judged fluency, PrivLeak, FPR

Per forget split and method: forget quality as mean +- sd over the seeds with the worst (smallest) seed's value,
and model utility as mean +- sd with its ratio to the target's mean. Printed as Markdown on stdout, so that
``benchmarks/regen_docs.py`` can keep the page equal to the results file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _g(x: float) -> str:
    """Three significant digits."""
    return f"{x:.3g}"


def _cell(stat: dict) -> str:
    """``mean +- sd`` (the mean alone for one seed)."""
    return _g(stat["mean"]) + ("" if stat["n"] < 2 else f" +- {_g(stat['sd'])}")


MORE = ("forget_Q_A_ROUGE", "forget_gen_ppl", "privleak", "classifier_fpr")
"""The extra columns of ``--more`` (mean +- sd): what the guarded model writes, how fluent a never-trained judge
finds it, the MIA leak, and the flag rule's false positives on held-out paraphrases."""


def headline(res: dict, more: bool = False) -> str:
    """One Markdown table over every split of ``res`` (a loaded bench results.json); ``more`` adds :data:`MORE`."""
    seeds = res["config"].get("seeds", [0])
    extra = MORE if more else ()
    lines = [f"| split | method | forget_quality (mean +- sd over seeds {','.join(map(str, seeds))}) | worst seed "
             "| model_utility | / target's |" + "".join(f" {c} |" for c in extra),
             "|---|---|---|---|---|---|" + "---|" * len(extra)]
    for split in dict.fromkeys(s["split"] for s in res["summary"]):
        rows = [s for s in res["summary"] if s["split"] == split]
        target = next(s for s in rows if s["method"] == "target")["model_utility"]["mean"]
        for s in rows:
            name = s["method"] + ("" if s["protocol"] == "-" else f" ({s['protocol']})")
            fq = [v for v in s["forget_quality"]["values"] if v is not None]
            lines.append(f"| {split} | {name} | {_cell(s['forget_quality'])} | {_g(min(fq))} | "
                         f"{_cell(s['model_utility'])} | {s['model_utility']['mean'] / target:.3f}x |"
                         + "".join(f" {_cell(s[c]) if s.get(c, {}).get('n') else '-'} |" for c in extra))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    more = "--more" in argv
    args = [a for a in argv if a != "--more"]
    if len(args) != 1:
        print("usage: python benchmarks/unlearning_headline.py [--more] RESULTS_JSON", file=sys.stderr)
        return 2
    print(headline(json.loads(Path(args[0]).read_text()), more))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
