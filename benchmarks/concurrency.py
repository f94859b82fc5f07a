"""Two writers of one output folder, many times: spurious failures and lost or overwritten results (issue 17).

    nice -n 10 .venv/bin/python benchmarks/concurrency.py --rounds 50 --out docs/benchmarks/robustness/concurrency.json
    .venv/bin/python benchmarks/concurrency.py --table docs/benchmarks/robustness/concurrency.json   # the docs' table

Each round starts two ``python -m forgetlab`` processes at once on one fresh folder, for each pair:

- ``sweep``: two ``grok sweep`` of one tiny grid (6 runs, one run per batch) on one empty folder. Sweeps share
  a folder by design, so both must exit 0; every run of the grid must be in ``runs/`` and in ``results.csv``
  exactly once. Anything else is a spurious failure (an exit other than 0) or a lost result (a run missing,
  damaged or listed twice).
- ``fit``: two ``eco fit --out SAME`` (tiny Llama, the default classifier, strengths 1.5 and 2.5). An
  output folder has one writer: exactly one must exit 0 and the other be refused with exit 2 and one
  ``error: out:`` line; the folder must then be a whole guard (its checksums verify) holding the winner's
  strength. Both exiting 0 is an overwritten result; a folder that is not the winner's, or not whole, a lost
  one; a refusal of another kind, a traceback, or no winner, a spurious failure.
- ``train``: two ``grok train --out SAME`` (seeds 11 and 22), judged like ``fit`` by the seed in config.json.

Both processes are forked at once from a server process that has imported forgetlab, torch and transformers
(``--spawn`` starts ``python -m forgetlab`` instead, as a user would: same code, seconds of imports first), so the
two overlap for most of their life; each round
records whether the refused writer found the folder held ("writing it now": truly concurrent) or already
written ("an empty or new folder": the first had finished), so the counts say how many rounds really raced.
Results are saved after every round (``partial`` until the last); ``--table`` renders them as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ("sweep", "fit", "train")
SWEEP_SPEC = """[sweep]
name = "race"
max_batch_runs = 1

[fixed]
p = 7
width = 8
steps = 30
log_every = 10

[grid]
alpha = [0.3, 0.5, 0.7]
xi = [0.1, 0.3]
"""
SWEEP_RUNS = 6


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _child(argv: list[str], log: str) -> None:
    """One command in a forked process, as the shell would run it: stdout and stderr to ``log`` files."""
    with open(log + ".out", "w") as out, open(log + ".err", "w") as err:
        sys.stdout, sys.stderr = out, err
        from forgetlab.cli import main

        try:
            main(argv)
        except SystemExit as exc:
            out.flush()
            err.flush()
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        except BaseException:  # a traceback escaped main: what the user would see
            import traceback

            traceback.print_exc(file=err)
            err.flush()
            os._exit(99)


def _pair(argvs: list[list[str]], logs: Path) -> list[dict[str, Any]]:
    """Start both commands at once, each in its own process; their exit codes, stdout and stderr.

    ``--fork`` (default): processes forked from a server that has imported forgetlab, torch and
    transformers, so both start in milliseconds and overlap fully; ``--spawn``: ``python -m forgetlab``
    as a user would start it (seconds of imports first, on a loaded machine tens of seconds)."""
    if SPAWN:
        procs = [subprocess.Popen([sys.executable, "-m", "forgetlab", *a], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT) for a in argvs]
        outs = [p.communicate(timeout=900) for p in procs]
        return [{"code": p.returncode, "stdout": o, "stderr": e} for p, (o, e) in zip(procs, outs, strict=True)]
    procs = [FORK.Process(target=_child, args=(a, str(logs / f"p{i}"))) for i, a in enumerate(argvs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(900)
    return [{"code": p.exitcode, "stdout": (logs / f"p{i}.out").read_text(), "stderr": (logs / f"p{i}.err").read_text()}
            for i, p in enumerate(procs)]


SPAWN = False
FORK: Any = None


def _fixtures(root: Path) -> dict[str, Path]:
    """A tiny base model, forget and retain prompts, and the sweep spec."""
    from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm

    tok = build_tokenizer()
    model = save_lm(build_tiny_lm("llama", tok, seed=0), tok, root / "model")
    forget = [{"prompt": f"Who is Zorblax Quint, author number {i}?"} for i in range(12)]
    retain = [{"prompt": f"What is the capital of country number {i}?"} for i in range(24)]
    for name, rows in (("forget", forget), ("retain", retain)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "spec.toml").write_text(SWEEP_SPEC)
    return {"model": model, "forget": root / "forget.jsonl", "retain": root / "retain.jsonl",
            "spec": root / "spec.toml"}


def _sweep_round(fx: dict[str, Path], out: Path) -> dict[str, Any]:
    argv = ["grok", "sweep", "--quiet", "--spec", str(fx["spec"]), "--out", str(out)]
    procs = _pair([argv, argv], out.parent)
    ids = [p.stem for p in (out / "runs").glob("*.json")] if (out / "runs").is_dir() else []
    damaged = 0
    for run in (out / "runs").glob("*.json") if ids else []:
        try:
            json.loads(run.read_text(encoding="utf-8"))["summary"]
        except (ValueError, KeyError, TypeError, OSError):
            damaged += 1
    rows = []
    if (out / "results.csv").is_file():
        import csv

        with open(out / "results.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    row_ids = [r.get("run_id") or r.get("id") for r in rows]
    spurious = sum(p["code"] != 0 for p in procs)
    lost = (SWEEP_RUNS - len(set(ids))) + damaged + (SWEEP_RUNS - len(set(row_ids))) + (len(row_ids) - len(set(row_ids)))
    return {"codes": [p["code"] for p in procs], "spurious": spurious, "lost": max(lost, 0), "runs": len(ids),
            "rows": len(rows), "raced": True, "errors": [p["stderr"][-500:] for p in procs if p["code"] != 0]}


def _exclusive_round(kind: str, procs: list[dict[str, Any]], owner_of, values: list[Any]) -> dict[str, Any]:
    """Judge a pair of exclusive writers (fit, train): one winner, one clean refusal, the winner's result."""
    codes = [p["code"] for p in procs]
    winners = [i for i, c in enumerate(codes) if c == 0]
    losers = [i for i, c in enumerate(codes) if c != 0]
    refusal = [p["stderr"].strip() for p in (procs[i] for i in losers)]
    clean = all(c == 2 and s.count("\n") == 0 and s.startswith("error: out: ") and "Traceback" not in s
                for c, s in zip((codes[i] for i in losers), refusal, strict=True))
    raced = any("writing it now" in s for s in refusal)
    res = {"codes": codes, "spurious": 0, "lost": 0, "overwritten": 0, "raced": raced,
           "errors": [procs[i]["stderr"][-500:] for i in losers]}
    if len(winners) == 2:
        res["overwritten"] = 1
    elif len(winners) == 0 or not clean:
        res["spurious"] = 1
    if len(winners) == 1:
        try:
            found = owner_of()
        except Exception as exc:  # a folder that is not whole: the winner's result is lost
            found = f"unreadable: {type(exc).__name__}: {exc}"
        res["found"] = found
        res["lost"] = int(found != values[winners[0]])
    return res


def _fit_round(fx: dict[str, Path], out: Path) -> dict[str, Any]:
    strengths = [1.5, 2.5]
    base = ["eco", "fit", "--quiet", "--model", str(fx["model"]), "--forget", str(fx["forget"]), "--retain",
            str(fx["retain"]), "--fpr", "0.2", "--out", str(out)]
    procs = _pair([[*base, "--strength", str(s)] for s in strengths], out.parent)

    def owner() -> float:
        from forgetlab.eco.guard_folder import read_guard_folder, read_guard_meta

        read_guard_folder(out)  # every checksum, the record's fields, the model reference
        return read_guard_meta(out)["config"]["strength"]

    return _exclusive_round("fit", procs, owner, strengths)


def _train_round(fx: dict[str, Path], out: Path) -> dict[str, Any]:
    seeds = [11, 22]
    base = ["grok", "train", "--quiet", "--p", "7", "--width", "8", "--steps", "200", "--log-every", "50",
            "--out", str(out)]
    procs = _pair([[*base, "--seed", str(s)] for s in seeds], out.parent)

    def owner() -> int:
        json.loads((out / "summary.json").read_text(encoding="utf-8"))
        return json.loads((out / "config.json").read_text(encoding="utf-8"))["config"]["seed"]

    return _exclusive_round("train", procs, owner, seeds)


ROUNDS = {"sweep": _sweep_round, "fit": _fit_round, "train": _train_round}


def run(rounds: int, pairs: list[str], save) -> dict[str, Any]:
    """``rounds`` rounds of each pair in turn; ``save(result)`` after each round."""
    res: dict[str, Any] = {"pairs": {p: {"rounds": 0, "spurious": 0, "lost": 0, "overwritten": 0, "raced": 0,
                                         "seconds": 0.0, "failures": []} for p in pairs}}
    with tempfile.TemporaryDirectory(prefix="concurrency-") as tmp:
        fx = _fixtures(Path(tmp))
        for r in range(rounds):
            for pair in pairs:
                t0 = time.perf_counter()
                (Path(tmp) / f"{pair}-{r}").mkdir()
                one = ROUNDS[pair](fx, Path(tmp) / f"{pair}-{r}" / "out")
                c = res["pairs"][pair]
                c["rounds"] += 1
                c["seconds"] += time.perf_counter() - t0
                for k in ("spurious", "lost", "overwritten"):
                    c[k] += one.get(k, 0)
                c["raced"] += bool(one["raced"])
                if one.get("spurious") or one.get("lost") or one.get("overwritten"):
                    c["failures"].append({"round": r, **one})
                print(f"{pair} round {r}: {json.dumps({k: v for k, v in one.items() if k != 'errors'})} "
                      f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
                save(res | {"partial": True})
    return res | {"partial": False}


def table(paths: list[Path]) -> str:
    """The Markdown of results files (one per process: pairs may run in parallel processes), as in
    docs/benchmarks/robustness.md."""
    lines = []
    pairs: dict[str, Any] = {}
    for path in paths:
        res = json.loads(path.read_text(encoding="utf-8"))
        m = res["machine"]
        pairs |= res["pairs"]
        lines.append(f"- `{res['command']}`: {res['finished']}, {res['seconds'] / 60:.1f} min on {m['cpu']}, "
                     f"{m['cores']} cores, load average {m['load_average'][0]:.1f} at the start (a shared machine)"
                     + ("; **partial: stopped before its last round**" if res.get("partial") else ""))
    lines += ["", "| pair | rounds | spurious failures | lost results | overwritten results | rounds that raced | "
             "mean s / round |", "|---|---|---|---|---|---|---|"]
    for pair, c in pairs.items():
        raced = "all (shared by design)" if pair == "sweep" else str(c["raced"])
        lines.append(f"| {pair} | {c['rounds']} | {c['spurious']} | {c['lost']} | {c['overwritten']} | {raced} | "
                     f"{c['seconds'] / max(c['rounds'], 1):.1f} |")
    fails = [f for c in pairs.values() for f in c["failures"]]
    if fails:
        lines += ["", f"Failures ({len(fails)}; the first 10):", ""]
        lines += [f"- `{json.dumps(f)[:400]}`" for f in fails[:10]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=50, help="Rounds of each pair.")
    ap.add_argument("--pairs", default=",".join(PAIRS), help="Comma-separated subset of: " + ", ".join(PAIRS))
    ap.add_argument("--spawn", action="store_true", help="Start each command as `python -m forgetlab` instead of "
                    "forking it from a process that has imported the libraries already.")
    ap.add_argument("--out", type=Path, help="Results JSON to write.")
    ap.add_argument("--table", type=Path, nargs="+", help="Only print the Markdown of these results files.")
    args = ap.parse_args(argv)
    if args.table:
        sys.stdout.write(table(args.table))
        return 0
    if args.out is None:
        ap.error("give --out (or --table RESULTS)")
    global SPAWN, FORK
    SPAWN = args.spawn
    os.environ.update(_env())
    if not SPAWN:
        import multiprocessing

        FORK = multiprocessing.get_context("forkserver")
        FORK.set_forkserver_preload(["forgetlab.cli", "forgetlab.eco.cli", "forgetlab.grok.cli", "torch",
                                     "transformers", "forgetlab.eco.guard", "forgetlab.grok.train",
                                     "forgetlab.grok.sweep.run"])
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    if not pairs or any(p not in PAIRS for p in pairs):
        ap.error(f"--pairs: a comma-separated subset of {', '.join(PAIRS)}")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fuzz import _machine, _versions

    machine, t0 = _machine(), time.perf_counter()
    command = "python benchmarks/concurrency.py " + " ".join(argv if argv is not None else sys.argv[1:])

    def save(res: dict[str, Any]) -> None:
        res = res | {"seconds": time.perf_counter() - t0, "machine": machine, "versions": _versions(),
                     "command": command, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1), encoding="utf-8")
        tmp.replace(args.out)

    res = run(args.rounds, pairs, save)
    save(res)
    print(json.dumps({p: {k: v for k, v in c.items() if k != "failures"} for p, c in res["pairs"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
