"""The long fuzz run: thousands of generated command lines and HTTP requests, counted (issue 17's acceptance).

    nice -n 10 .venv/bin/python benchmarks/fuzz.py cli --cases 2100 --out docs/benchmarks/robustness/fuzz_cli.json
    nice -n 10 .venv/bin/python benchmarks/fuzz.py http --requests 1050 --out docs/benchmarks/robustness/fuzz_http.json
    .venv/bin/python benchmarks/fuzz.py --table docs/benchmarks/robustness/fuzz_cli.json   # Markdown (the docs)

``cli`` drives every command through the generators of ``tests/fuzz_cli.py`` (the fast test's, with more
examples and random seeds), in-process, each case in a fresh sandbox, with the same checks as the test: exit
0/1/2, never a traceback, a failure is one ``error:`` line and leaves its sandbox unchanged, a success prints
only its result. Unlike the test, a broken property does not stop the run: it is counted and listed. The
cases are shared out evenly over the commands; rounds with new seeds run until ``--cases`` is reached (a
command whose generator runs out of new cases in a round gets fewer).

``http`` starts the ECO server on a tiny guard in this process and sends schemathesis' generated requests
(``tests/eco/serve/fuzz_http.py``) to every operation of its OpenAPI description, in rounds until
``--requests`` is reached; it counts answers by status, 5xx, answers the description does not allow, and
checks the server is healthy afterwards (``/health``, a normal completion, nothing left in flight).

Each writes one JSON file: the counts, the failures (argv or body, and what broke), the seeds, the settings,
the machine, versions and load, and the wall time. ``--table`` renders a results file as the Markdown in
docs/benchmarks/robustness.md (benchmarks/regen_docs.py keeps the doc equal to it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROUND = 10
"""Examples per command (CLI) or per operation and mode (HTTP) in one round: the results file is saved after
each, so that a run stopped early keeps what it counted."""


def _machine() -> dict[str, Any]:
    """Where and under what load the run happened (the machine is shared: a loaded run is marked as such)."""
    import platform

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average": list(os.getloadavg())}


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("forgetlab", "torch", "transformers", "hypothesis", "schemathesis", "fastapi")}


def _tests_on_path() -> None:
    for sub in ("tests", "tests/eco/serve"):
        if str(ROOT / sub) not in sys.path:
            sys.path.insert(0, str(ROOT / sub))


def run_cli(target: int, seed: int, shard: tuple[int, int], save) -> dict[str, Any]:
    """At least ``target`` generated invocations over the commands of ``shard`` (i, n: every n-th command from
    the i-th, so that n processes share the commands); counts per command and the failures. ``save(result)``
    is called after each command's round, so that an interrupted run keeps what it counted."""
    _tests_on_path()
    import pytest
    import torch
    from fuzz_cli import build_fixtures, commands, counter, fuzz_command, stand_ins

    torch.set_num_threads(1)
    counts: dict[str, dict[str, int]] = {}
    failures: list[dict[str, Any]] = []
    seeds, rng = [], random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="fuzz-fixtures-") as root, pytest.MonkeyPatch.context() as mp:
        stand_ins(mp.setattr)
        fx = build_fixtures(Path(root))
        names = sorted(commands(fx))[shard[0]::shard[1]]
        record = counter(counts, failures, strict=False)
        while sum(c["cases"] for c in counts.values()) < target:
            done = sum(c["cases"] for c in counts.values())
            per = min(ROUND, max(1, math.ceil((target - done) / len(names))))
            round_seed = rng.randrange(2**32)
            seeds.append(round_seed)
            for name in names:
                t0 = time.perf_counter()
                fuzz_command(name, fx, per, record, derandomize=False, seed=round_seed)
                print(f"{name}: {counts[name]['cases']} cases ({time.perf_counter() - t0:.0f} s this round)",
                      file=sys.stderr)
                save(_cli_result(counts, failures, seeds, shard, partial=True))
    return _cli_result(counts, failures, seeds, shard, partial=False)


def _cli_result(counts, failures, seeds, shard, *, partial: bool) -> dict[str, Any]:
    totals = {f: sum(c[f] for c in counts.values()) for f in next(iter(counts.values()))}
    return {"kind": "cli", "counts": counts, "totals": totals, "failures": failures, "seeds": seeds,
            "shard": list(shard), "partial": partial}


def run_http(target: int, seed: int, save) -> dict[str, Any]:
    """At least ``target`` generated requests to a live server on a tiny guard; counts and the failures."""
    _tests_on_path()
    import httpx
    import torch
    from fuzz_http import fuzz_server
    from serve_helpers import save_tiny_guard

    from forgetlab.eco.guard import EcoGuard
    from forgetlab.eco.serve.engine import ServeEngine
    from forgetlab.eco.serve.server import serve_in_thread
    from forgetlab.eco.serve.types import ServeLimits

    torch.set_num_threads(1)
    key = "fuzz-key"
    statuses: dict[str, int] = {}
    failures: list[dict[str, Any]] = []

    def record(label, body, response, broken):
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        if broken is not None:
            failures.append({"operation": label, "status": response.status_code, "body": repr(body)[:500],
                             "what": str(broken)[:2000]})

    limits = ServeLimits(max_tokens=8, max_prompt_tokens=64, max_n=2, max_batch_size=4, max_body_bytes=20_000)
    seeds, rng = [], random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="fuzz-http-") as root:
        guard = EcoGuard.from_pretrained(save_tiny_guard(Path(root))[1])
        with serve_in_thread(ServeEngine(guard, "transformers", limits, model_name="fuzz"), api_key=key) as srv:
            headers = {"Authorization": f"Bearer {key}"}
            while sum(statuses.values()) < target:
                seeds.append(rng.randrange(2**32))
                before = sum(statuses.values())
                fuzz_server(srv.url, ROUND, headers, record, derandomize=False, seed=seeds[-1])
                save(_http_result(statuses, failures, None, seeds, limits, partial=True))
                print(f"{sum(statuses.values())} requests (+{sum(statuses.values()) - before})", file=sys.stderr)
            with httpx.Client(base_url=srv.url, timeout=60, headers=headers) as http:
                health = http.get("/health").json()["status"]
                ok = http.post("/v1/completions", json={"prompt": "Paris is", "max_tokens": 2}).status_code
            healthy = {"health": health, "completion_status": ok, "in_flight": srv.engine.in_flight,
                       "queued": srv.engine.batcher.depth()}
    return _http_result(statuses, failures, healthy, seeds, limits, partial=False)


def _http_result(statuses, failures, healthy, seeds, limits, *, partial: bool) -> dict[str, Any]:
    totals = {"requests": sum(statuses.values()), "5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
              "nonconforming": len(failures)}
    return {"kind": "http", "statuses": dict(sorted(statuses.items())), "totals": totals, "failures": failures,
            "healthy_afterwards": healthy, "seeds": seeds, "limits": dataclasses.asdict(limits),
            "partial": partial}


def merged(paths: list[Path]) -> dict[str, Any]:
    """Results files of one kind as one: the CLI shards' counts side by side (each command is in one shard),
    totals and failures added up."""
    parts = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    res = dict(parts[0])
    if len(parts) > 1:
        if any(p["kind"] != "cli" for p in parts):
            raise SystemExit("only CLI shards can be merged")
        names = [name for p in parts for name in p["counts"]]
        if len(set(names)) != len(names):  # shards of different runs (another command split): not one run
            raise SystemExit("these CLI shards share commands: give the shards of one run (one --cases, 0/N..N-1/N)")
        res["counts"] = dict(sorted((kv for p in parts for kv in p["counts"].items()), key=lambda kv: kv[0]))
        res["totals"] = {f: sum(p["totals"][f] for p in parts) for f in res["totals"]}
        res["failures"] = [f for p in parts for f in p["failures"]]
        res["partial"] = any(p.get("partial") for p in parts)
    res["runs"] = [{"command": p["command"], "finished": p["finished"], "seconds": p["seconds"],
                    "load_average": p["machine"]["load_average"][0], "seeds": p["seeds"]} for p in parts]
    return res


def table(paths: list[Path]) -> str:
    """The Markdown of one results file, or of a run's CLI shards together (what docs/benchmarks/robustness.md
    shows)."""
    res = merged(paths)
    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores (shared with other jobs: load averages at the start "
             "are listed). " + ("**Partial: the run was stopped before its target.** " if res.get("partial") else ""),
             ""]
    lines += [f"- `{r['command']}`: finished {r['finished']}, {r['seconds'] / 60:.1f} min, load average "
              f"{r['load_average']:.1f}" for r in res["runs"]]
    lines.append("")
    if res["kind"] == "cli":
        lines += ["| command | cases | exit 0 | exit 1 | exit 2 | tracebacks | other broken properties |",
                  "|---|---|---|---|---|---|---|"]
        rows = [*res["counts"].items(), ("**all**", res["totals"])]
        lines += [f"| {name} | {c['cases']} | {c['exit_0']} | {c['exit_1']} | {c['exit_2']} | {c['tracebacks']} | "
                  f"{c['violations']} |" for name, c in rows]
    else:
        t, h = res["totals"], res["healthy_afterwards"]
        lines += ["| requests | 5xx | answers the description does not allow | by status |", "|---|---|---|---|",
                  f"| {t['requests']} | {t['5xx']} | {t['nonconforming']} | "
                  + ", ".join(f"{s}: {n}" for s, n in res["statuses"].items()) + " |", ""]
        lines.append("Afterwards: not checked (stopped early)." if h is None else
                     f"Afterwards: /health {h['health']!r}, a plain completion {h['completion_status']}, "
                     f"{h['in_flight']} in flight, {h['queued']} queued.")
    if res["failures"]:
        lines += ["", f"Failures ({len(res['failures'])}; the first 10):", ""]
        lines += [f"- `{json.dumps(f)[:300]}`" for f in res["failures"][:10]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", nargs="?", choices=("cli", "http"), help="What to fuzz.")
    ap.add_argument("--cases", type=int, default=2100, help="CLI invocations to generate (at least).")
    ap.add_argument("--requests", type=int, default=1050, help="HTTP requests to generate (at least).")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the rounds' hypothesis seeds.")
    ap.add_argument("--out", type=Path, help="Results JSON to write.")
    ap.add_argument("--shard", default="0/1", help="I/N: this process fuzzes every N-th command from the I-th.")
    ap.add_argument("--table", type=Path, nargs="+", help="Only print the Markdown of these results files (one "
                    "run: the http file, or the cli shards).")
    args = ap.parse_args(argv)
    if args.table:
        sys.stdout.write(table(args.table))
        return 0
    if args.part is None or args.out is None:
        ap.error("give a part (cli or http) and --out, or --table RESULTS")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MPLBACKEND", "Agg")
    machine, t0 = _machine(), time.perf_counter()
    command = "python benchmarks/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:])

    def save(res: dict[str, Any]) -> None:
        res |= {"seconds": time.perf_counter() - t0, "seed": args.seed, "machine": machine,
                "versions": _versions(), "command": command,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1), encoding="utf-8")
        tmp.replace(args.out)

    if args.part == "cli":
        i, n = (int(x) for x in args.shard.split("/"))
        res = run_cli(math.ceil(args.cases / n), args.seed + i, (i, n), save)
    else:
        res = run_http(args.requests, args.seed, save)
    save(res)
    print(json.dumps(res["totals"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
