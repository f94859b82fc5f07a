"""Time every command of the README's quick tour, as a user runs it, and write the README's table of times.

Runs each command in a fresh process (``python -m forgetlab ...``) in a scratch folder, in the README's order,
and records its wall time, exit code and the load average before and after, with the machine (CPU model,
cores, torch threads, load) and versions, into ``docs/benchmarks/results/quick_tour.json``: one timing per
command, for orientation (a comparison of variants goes through ``discipline.py`` instead). The ECO commands need a model and
data: the tour's own ``eco bench`` trains the target model (into ``--cache``), ``eco world`` exports the data,
and the forget/retain prompts and multiple-choice fit items for ``eco fit`` are taken from that export (forget10
authors' questions; retain authors' questions; the forget subject's multiple-choice questions, for the world
has none about authors). The bench's model learned the world as ``Question: q\nAnswer: a.``, so the fit puts
its items in that template (``--fit-format qa``): as written the model is at chance on them and the fitted
strength was 0; in the template it knows some of them, fewer than with the closing period of the answers it
learned, which the export's choices lack. forget10's authors are named people, so the guard also flags their names (``--flag-entities``: the
classifier alone flags no held-out forget prompt at a 1% FPR that holds for never-seen authors, docs/benchmarks/guard_evasion.md). The paper-size
sweep presets take about a day on 2 cores and App. G's cases hours, so the tour times the ``wd`` preset's
``--estimate``, runs ``--preset small`` in its place, and leaves App. G out. ``--render`` rewrites the table between the ``quick-tour-times`` markers of README.md from the
JSON (no timing).

Usage::

    nice -n 10 .venv/bin/python benchmarks/quick_tour.py --work /tmp/tour --cache /tmp/tour-cache
    .venv/bin/python benchmarks/quick_tour.py --render
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from forgetlab.hardware import machine
from forgetlab.runs import versions

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "docs" / "benchmarks" / "results" / "quick_tour.json"
README = ROOT / "README.md"
MARK_START, MARK_END = "<!-- quick-tour-times:start -->", "<!-- quick-tour-times:end -->"


def tour(w: Path) -> list[tuple[str, list[str]]]:
    """(label, argv after ``forgetlab``) of each quick-tour command, in the README's order; ``{target}`` is the
    bench's target model, filled in when the bench has run. Commands of hours (App. G's cases, the paper-size and
    p = 47 presets) are not timed: ``--estimate`` times the estimate and the ``small`` preset stands in for a run."""
    return [
        ("grok train (p=97, 500 steps)", ["grok", "train", "--p", "97", "--op", "add", "--alpha", "0.5", "--xi",
                                          "0.35", "--wd", "5", "--steps", "500", "--out", f"{w}/runs/a4"]),
        ("grok prune", ["grok", "prune", f"{w}/runs/a4"]),
        ("grok analytic", ["grok", "analytic", "--p", "97", "--width", "500"]),
        ("grok train --model transformer (3000 steps)",
         ["grok", "train", "--model", "transformer", "--act", "relu", "--lr", "1e-3", "--wd", "1", "--steps", "3000",
          "--out", f"{w}/runs/tf"]),
        ("grok train --depth 3 (5000 steps)", ["grok", "train", "--depth", "3", "--act", "relu", "--lr", "1e-3",
                                               "--steps", "5000", "--out", f"{w}/runs/deep"]),
        ("grok reproduce (cases A0-A9)", ["grok", "reproduce", "--out", f"{w}/runs/grok-cases"]),
        ("grok sweep --preset wd --estimate", ["grok", "sweep", "--preset", "wd", "--out", f"{w}/runs/wd-panel",
                                               "--estimate"]),
        ("grok sweep --preset small --workers 2 (75 runs)", ["grok", "sweep", "--preset", "small", "--workers", "2",
                                                             "--out", f"{w}/runs/small"]),
        ("grok phase-diagram (the small sweep)", ["grok", "phase-diagram", f"{w}/runs/small"]),
        ("eco world", ["eco", "world", "--out", f"{w}/runs/world"]),
        ("eco bench (default scale, empty cache)", ["eco", "bench", "--scale", "default", "--answers", "name-free",
                                                    "--out", f"{w}/runs/bench"]),
        ("eco fit", ["eco", "fit", "--model", "{target}", "--forget", f"{w}/runs/world/tofu/forget10.json",
                     "--retain", f"{w}/runs/world/tofu/retain90.json", "--fit", "{fit_file}",
                     "--fit-format", "qa", "--flag-entities", "--corruption", "rand_noise_first_n",
                     "--target", "chance", "--fpr", "0.01", "--name", "alice", "--out", f"{w}/guard"]),
        ("eco targets", ["eco", "targets", "--guard", f"{w}/guard"]),
        ("eco classify", ["eco", "classify", "--guard", f"{w}/guard", "--prompt", "{forget_question}"]),
        ("eco generate", ["eco", "generate", "--guard", f"{w}/guard", "--prompt", "{forget_question}"]),
        ("eco serve (until /health answers)", ["eco", "serve", "--guard", f"{w}/guard", "--port", "0"]),
        ("eco evaluate", ["eco", "evaluate", "--model", f"{w}/guard", "--base-model", "{target}", "--suite", "tofu",
                          "--data", f"{w}/runs/world/tofu", "--split", "forget10"]),
        ("reproduce (make demo)", ["reproduce", "--out", f"{w}/out/reproduce"]),
    ]


def fit_inputs(w: Path) -> dict[str, str]:
    """What `eco fit` and the commands after it take from the exported world: the forget subject's
    multiple-choice file (WMDP layout) and one forget question (the TOFU layout's files are JSON lines)."""
    world = json.loads((w / "runs" / "world" / "world.json").read_text())
    first = (w / "runs" / "world" / "tofu" / "forget10.json").read_text().splitlines()[0]
    return {"fit_file": str(w / "runs" / "world" / "wmdp" / f"wmdp-{world['forget_subject']}.jsonl"),
            "forget_question": json.loads(first)["question"]}


def run_one(argv: list[str], env: dict) -> tuple[float, int, str]:
    """Wall seconds, exit code and stderr tail of one command; `eco serve` is timed to its first /health."""
    t0 = time.perf_counter()
    if argv[:2] != ["eco", "serve"]:
        res = subprocess.run([sys.executable, "-m", "forgetlab", *argv], env=env, capture_output=True, text=True)
        return time.perf_counter() - t0, res.returncode, res.stderr[-400:]
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [*argv[:-1], str(port)]
    proc = subprocess.Popen([sys.executable, "-m", "forgetlab", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return time.perf_counter() - t0, 0, ""
            except httpx.TransportError:
                time.sleep(0.2)
        return time.perf_counter() - t0, proc.returncode, proc.stderr.read()[-400:]
    finally:
        proc.terminate()
        proc.wait(30)


def measure(work: Path, cache: Path, only: set[str] | None = None) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "FORGETLAB_CACHE": str(cache),
           "PYTHONPATH": str(ROOT)}
    rows, fills, commit = [], {}, _commit()  # the commit timed, before the hours of the tour
    before = json.loads(RESULT.read_text()) if only else {}
    kept = {r["label"]: r for r in before.get("rows", [])}
    for label, argv in tour(work):
        if only and label not in only:  # --only: the other rows as the full tour timed them
            if label in kept:
                rows.append(kept[label])
            continue
        if label in ("eco fit", *(only or ())) and "target" not in fills:
            fills["target"] = json.loads((work / "runs" / "bench" / "results.json").read_text())["config"][
                "models"]["target"]
            fills.update(fit_inputs(work))
        argv = [a.format(**fills) if "{" in a else a for a in argv]
        load0 = os.getloadavg()[0]
        print(f"{label} ...", file=sys.stderr, flush=True)
        seconds, code, err = run_one(argv, env)
        rows.append({"label": label, "command": "forgetlab " + " ".join(argv).replace(str(work), "WORK"),
                     **({"rerun_on_commit": commit} if only else {}),
                     "seconds": seconds, "exit_code": code, "load_before": load0, "load_after": os.getloadavg()[0],
                     **({"stderr_tail": err} if code not in (0,) else {})})
        print(f"  {seconds:.1f} s, exit {code}, load {load0:.1f} -> {os.getloadavg()[0]:.1f}", file=sys.stderr)
        record = {"machine": machine(), "versions": versions(), "commit": before.get("commit", commit),
                  "measured": before.get("measured", time.strftime("%Y-%m-%dT%H:%M:%S%z")), "rows": rows}
        RESULT.write_text(json.dumps({**record, "partial": True}, indent=2) + "\n")  # a crash keeps the rows
    return record


def _commit() -> str:
    """The checked-out commit the tour timed (with ``+dirty`` when the tree has changes)."""
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    return sha.strip() + ("+dirty" if dirty.strip() else "")


def table(data: dict) -> str:
    """The README's table, from the result file."""
    m = data["machine"]
    lines = [f"Measured {data['measured'][:10]} on commit {data['commit']}, {m['cores']} cores ({m['cpu']}, bf16 "
             f"units: {'yes' if m['bf16_units'] else 'no'}), torch {m['torch_threads']} threads, one timing per "
             "command, the load average beside each: `python benchmarks/quick_tour.py` (table: `--render`).", "",
             "| command | wall time | load average (before / after) |", "|---|---|---|"]
    for r in data["rows"]:
        s = r["seconds"]
        t = f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"
        note = "" if r["exit_code"] == 0 else f" (exit {r['exit_code']})"
        note += f" (timed again on {r['rerun_on_commit']})" if r.get("rerun_on_commit") else ""
        lines.append(f"| `{r['label']}` | {t}{note} | {r['load_before']:.1f} / {r['load_after']:.1f} |")
    return "\n".join(lines)


def render() -> None:
    data = json.loads(RESULT.read_text())
    text = README.read_text()
    start, end = text.index(MARK_START) + len(MARK_START), text.index(MARK_END)
    README.write_text(text[:start] + "\n" + table(data) + "\n" + text[end:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/forgetlab-tour"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/forgetlab-tour-cache"))
    ap.add_argument("--render", action="store_true", help="only rewrite the README table from the JSON")
    ap.add_argument("--only", default="", help="comma-separated labels to time again in the --work of a finished "
                    "tour, keeping the other rows of the result file")
    args = ap.parse_args()
    if args.only:
        only = {x.strip() for x in args.only.split(",") if x.strip()}
        RESULT.write_text(json.dumps(measure(args.work, args.cache, only), indent=2) + "\n")
    elif not args.render:
        for p in (args.work, args.cache):
            if p.exists() and any(p.iterdir()):
                sys.exit(f"{p} is not empty: the tour times commands from scratch")
        args.work.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(measure(args.work, args.cache), indent=2) + "\n")
    render()
    print(table(json.loads(RESULT.read_text())))


if __name__ == "__main__":
    main()
