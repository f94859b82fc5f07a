"""A `make demo` run kept as a small result file, and its table for docs/benchmarks.md.

    python benchmarks/demo_run.py record OUT --wall-seconds S [--install-seconds S] --commit SHA \
        --load-start L --note TEXT -o docs/benchmarks/results/make_demo.json
    python benchmarks/demo_run.py table docs/benchmarks/results/make_demo.json

``record`` reads the report's ``results.json`` under ``OUT`` (stage times, claims, versions) and adds what only
the caller knows (the wall time of ``make demo`` as ``/usr/bin/time`` measured it, the venv install's share, the
commit, the load when it started, the machine). ``table`` prints the stage table with every missed claim, so the
docs show the run's own numbers, never typed ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from discipline import machine

from forgetlab.runs import atomic_write_json

TIMED_BY = "`/usr/bin/time make demo`"
"""How a record's wall time was taken, where the record does not say (the records before ``--timed-by``)."""


def record(out: Path, args: argparse.Namespace) -> dict:
    """The summary of one demo run from its ``results.json`` and the caller's measurements."""
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    stages = [{"name": s["name"], "title": s["title"], "seconds": round(s["seconds"], 1), "cached": s["cached"],
               "claims": len(s["claims"]), "passed": sum(c["passed"] for c in s["claims"]),
               "not_run": bool(s.get("not_run"))} for s in res["stages"]]
    missed = [{k: c[k] for k in ("case", "quantity", "ours", "band")} for c in res["claims"] if not c["passed"]]
    return {"commit": args.commit, "finished": res["meta"]["finished"], "wall_seconds": args.wall_seconds,
            "install_seconds": args.install_seconds, "reproduce_seconds": round(res["meta"]["seconds"], 1),
            "load_at_start": args.load_start, "note": args.note, "timed_by": args.timed_by, "machine": machine(),
            "versions": res["meta"]["versions"], "stages": stages, "missed": missed,
            "claims": len(res["claims"]), "passed": sum(c["passed"] for c in res["claims"])}


def _mmss(seconds: float) -> str:
    total = round(seconds)
    return f"{total // 60} min {total % 60} s"


def table(rec: dict) -> str:
    """Markdown: the run's line (time, claims, machine, load), the stages, the missed claims."""
    cpu = rec["machine"]["cpu"]
    lines = [f"Run of {rec['finished']} on commit {rec['commit']}: **{_mmss(rec['wall_seconds'])} wall** "
             f"({rec.get('timed_by', TIMED_BY)}; of it {_mmss(rec['install_seconds'])} creating `.venv`, "
             f"{_mmss(rec['reproduce_seconds'])} `forgetlab reproduce`), **{rec['passed']} of {rec['claims']} "
             f"claims pass**. {cpu['model']} ({', '.join(cpu['flags'])}), {rec['machine']['cores']} cores, "
             f"torch {rec['versions']['torch']}, load {rec['load_at_start']} at the start. {rec['note']}", "",
             "| stage | wall time | claims |", "|---|---|---|"]
    for s in rec["stages"]:
        claims = "not run at this scale" if s["not_run"] else f"{s['passed']}/{s['claims']} pass"
        lines.append(f"| {s['title']} | {s['seconds']:.0f} s{' (cached)' if s['cached'] else ''} | {claims} |")
    if rec["missed"]:
        lines += ["", "Missed claims:", ""]
        lines += [f"- {m['case']}: {m['quantity']}: {m['ours']} (band: {m['band']})" for m in rec["missed"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="summarize a demo run's OUT folder into a result file")
    r.add_argument("out", type=Path, help="the demo's OUT folder (holds results.json)")
    r.add_argument("--wall-seconds", type=float, required=True, help="make demo's wall time (/usr/bin/time)")
    r.add_argument("--install-seconds", type=float, default=0.0, help="the part of it spent creating .venv")
    r.add_argument("--commit", required=True, help="the commit the demo ran")
    r.add_argument("--load-start", type=float, required=True, help="1-minute load when make demo started")
    r.add_argument("--note", default="", help="anything else about the conditions")
    r.add_argument("--timed-by", default=TIMED_BY, help="how the wall time was taken (markdown)")
    r.add_argument("-o", "--output", type=Path, required=True, help="the result file to write (JSON)")
    t = sub.add_parser("table", help="print a result file's Markdown table")
    t.add_argument("file", type=Path, help="a result file written by `record`")
    args = ap.parse_args(argv)
    if args.cmd == "record":
        if not (args.out / "results.json").is_file():
            print(f"error: out: {args.out} holds no results.json (a finished demo's OUT folder)", file=sys.stderr)
            return 2
        atomic_write_json(args.output, record(args.out, args))
        return 0
    print(table(json.loads(args.file.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
