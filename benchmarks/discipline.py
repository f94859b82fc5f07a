"""The benchmark discipline every timing script in ``benchmarks/`` uses: interleaved rounds, medians with their
spread, the machine and its load recorded beside every figure, contended rounds marked.

Why: on a shared machine a variant timed once, or all its rounds in a row, measures the neighbours as much as
the code (a busy second core slows a many-small-kernels variant far more than a big-matmul one). So:

- the compared variants run in **interleaved rounds** (round k runs every variant once, in a rotated order), at
  least :data:`MIN_ROUNDS`; every figure is a **median with min-max** over rounds;
- the **1-minute load average** is read before and after each round; a round where either exceeds the number
  of cores this process may use is **marked** (``contended``), and a ratio built from a marked round says so;
- a reference peak (e.g. a large ``torch.mm``) is just another variant: it is measured in the same rounds with
  the same statistic, never a best-of-N beside medians;
- the machine is recorded: CPU model and the flags that decide kernels (AVX2, AVX-512, AMX, bf16), the
  hypervisor, cores, torch threads, versions.

Use from a script run as ``python benchmarks/NAME.py`` (this folder is then on ``sys.path``)::

    from discipline import Variant, run_rounds, write_result
    res = run_rounds([Variant("ours", step, work=flops), Variant("dense", dense_step, work=flops)],
                     rounds=5, repeat=10)
    res.ratio("ours", "dense")   # {"median": ..., "min": ..., "max": ..., "contended_rounds": ...}
    write_result(path, name="grok_step", config=vars(args), result=res)

A result file is JSON (machine, config, every round, summaries, ratios); ``python benchmarks/discipline.py
table FILE...`` prints its Markdown table (used by the generated blocks of ``docs/benchmarks*.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgetlab.hardware import usable_cores

MIN_ROUNDS = 5  # fewer rounds give no usable spread; the issue asks for at least five
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model, vendor, the kernel-deciding flags present, and the hypervisor flag, from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name", platform.processor() or "unknown"),
            "vendor": fields.get("vendor_id", "unknown"),
            "flags": [f for f in KERNEL_FLAGS if f in flags],
            "virtualized": "hypervisor" in flags}


def machine(threads: int | None = None) -> dict[str, Any]:
    """Everything about the machine that a figure depends on: CPU, cores, threads, versions."""
    info: dict[str, Any] = {"cpu": cpu_info(), "cores": usable_cores(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads() if threads is None else threads
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        info["threads"] = threads
    return info


def load1() -> float:
    """The 1-minute load average (runnable + uninterruptible tasks, machine-wide)."""
    return os.getloadavg()[0]


@dataclass
class Variant:
    """One compared thing: ``fn()`` runs it once; ``work`` is what one call does (flops, prompts, runs) so that
    rates are ``work / seconds``; ``setup`` (optional) runs untimed before each round's calls. With
    ``self_timed`` ``fn`` returns the seconds it measured itself (a child process timing its own work without
    its interpreter's start-up), and those are used instead of the wall time of the call."""

    name: str
    fn: Callable[[], Any]
    work: float = 1.0
    unit: str = "calls"
    setup: Callable[[], Any] | None = None
    self_timed: bool = False


@dataclass
class Round:
    """One timed round of one variant: wall and CPU seconds per call, and the load around the round.

    CPU seconds are this process's (``time.process_time``; None for a self-timed variant). With one thread they
    are the steadier figure on a contended machine (time spent descheduled is not counted); with several
    threads, idle OpenMP threads spin and inflate them, so wall time stays the headline."""

    variant: str
    index: int
    seconds: float
    load_before: float
    load_after: float
    contended: bool
    cpu_seconds: float | None = None


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of ``values`` (the one statistic of every figure)."""
    if not values:
        raise ValueError("no values")
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


@dataclass
class Result:
    """The rounds of one interleaved measurement and their summaries."""

    variants: dict[str, dict[str, Any]]  # name -> {"work": ..., "unit": ...}
    rounds: list[Round]
    cores: int
    extra: dict[str, Any] = field(default_factory=dict)

    def of(self, name: str) -> list[Round]:
        return [r for r in self.rounds if r.variant == name]

    def summary(self, name: str) -> dict[str, Any]:
        """Seconds per call and rate (work/s) as median with min-max (wall, and CPU where measured); how many
        rounds were contended."""
        rs = self.of(name)
        work = self.variants[name]["work"]
        out = {"seconds": spread([r.seconds for r in rs]), "rate": spread([work / r.seconds for r in rs]),
               "unit": self.variants[name]["unit"], "rounds": len(rs),
               "contended_rounds": sum(r.contended for r in rs),
               "load": spread([x for r in rs for x in (r.load_before, r.load_after)])}
        if all(r.cpu_seconds for r in rs):
            out["cpu_seconds"] = spread([r.cpu_seconds for r in rs])
        return out

    def ratio(self, num: str, den: str, of: str = "rate", clock: str = "wall") -> dict[str, Any]:
        """``num``'s over ``den``'s rate (or seconds), median and min-max over the per-round ratios (round k of
        one against round k of the other: both saw about the same machine), on the wall or the CPU clock.
        ``contended_rounds`` counts the pairs where either round was marked; ``contended`` is True when any
        was."""
        pairs = list(zip(self.of(num), self.of(den), strict=False))
        wa, wb = self.variants[num]["work"], self.variants[den]["work"]
        secs = [(x.seconds, y.seconds) if clock == "wall" else (x.cpu_seconds, y.cpu_seconds) for x, y in pairs]
        if of == "rate":
            vals = [(wa / x) / (wb / y) for x, y in secs]
        else:
            vals = [x / y for x, y in secs]
        marked = sum(x.contended or y.contended for x, y in pairs)
        return {**spread(vals), "of": of, "clock": clock, "contended_rounds": marked, "contended": marked > 0}

    def to_json(self) -> dict[str, Any]:
        return {"cores": self.cores, "variants": self.variants, "rounds": [asdict(r) for r in self.rounds],
                "summary": {n: self.summary(n) for n in self.variants}, **self.extra}


def _timed(v: Variant, repeat: int) -> tuple[float, float | None]:
    """Wall and CPU seconds per call of ``v`` over ``repeat`` calls (after its untimed setup)."""
    if v.setup is not None:
        v.setup()
    if v.self_timed:
        return sum(float(v.fn()) for _ in range(repeat)) / repeat, None
    t, c = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        v.fn()
    return (time.perf_counter() - t) / repeat, (time.process_time() - c) / repeat


def run_rounds(variants: Sequence[Variant], *, rounds: int = MIN_ROUNDS, repeat: int = 1, warmup: int = 1,
               cores: int | None = None, load: Callable[[], float] = load1,
               log: Callable[[str], None] | None = None) -> Result:
    """Time ``variants`` in ``rounds`` interleaved rounds of ``repeat`` calls each, after ``warmup`` untimed
    calls of each. Round k runs the variants in an order rotated by k (so none is always first after a pause).
    A round is contended when the load before or after it exceeds ``cores`` (default: usable cores)."""
    if rounds < MIN_ROUNDS:
        raise ValueError(f"rounds must be >= {MIN_ROUNDS} (got {rounds}): medians of fewer have no spread")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique: {names}")
    cores = usable_cores() if cores is None else cores
    for v in variants:
        for _ in range(warmup):
            _timed(v, 1)
    out: list[Round] = []
    for k in range(rounds):
        for j in range(len(variants)):
            v = variants[(j + k) % len(variants)]
            before = load()
            sec, cpu = _timed(v, repeat)
            after = load()
            out.append(Round(v.name, k, sec, before, after, max(before, after) > cores, cpu))
            if log is not None:
                log(f"round {k + 1}/{rounds} {v.name}: {sec:.4g} s/call, load {before:.2f} -> {after:.2f}"
                    + (" (contended)" if out[-1].contended else ""))
    return Result({v.name: {"work": v.work, "unit": v.unit} for v in variants}, out, cores)


def stderr(msg: str) -> None:
    """Progress goes to stderr; results to stdout."""
    print(msg, file=sys.stderr, flush=True)


def matmul_peak(size: int = 2048) -> Variant:
    """The reference peak: one ``size``^3 float32 ``torch.mm`` (work in flops), to be measured among the
    compared variants with the same statistic."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    return Variant("peak_mm", lambda: torch.mm(a, b, out=out), work=2.0 * size**3, unit="flop")


def write_result(path: str | Path | None, *, name: str, command: str, config: dict[str, Any],
                 results: dict[str, Result], threads: int | None = None,
                 derived: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON record of one benchmark run (machine, command, config, every round, summaries, ``derived``
    figures such as ratios); written atomically to ``path`` when given; returned either way."""
    doc = {"benchmark": name, "command": command, "config": config, "machine": machine(threads),
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "results": {k: r.to_json() for k, r in results.items()}, "derived": derived or {}}
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return doc


def command_line() -> str:
    """How this script was run, for the record (``python benchmarks/x.py ARGS``)."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])


def fmt(x: float) -> str:
    """A figure to three significant digits; from a million on with an SI prefix (``13.9 G``)."""
    if x == 0:
        return "0"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def machine_line(doc: dict[str, Any]) -> str:
    """One line naming the machine of a result file."""
    m = doc["machine"]
    cpu = m["cpu"]
    virt = ", virtualized" if cpu.get("virtualized") else ""
    return (f"{cpu['model']} ({', '.join(cpu['flags']) or 'no AVX2'}{virt}), {m['cores']} cores, "
            f"{m.get('threads')} torch thread(s), torch {m.get('torch')}, finished {doc['finished']}")


def table(doc: dict[str, Any]) -> str:
    """Markdown: one row per variant of every measurement (median [min-max], load, contended rounds), then
    the derived ratios."""
    lines = [f"`{doc['command']}`", "", f"Machine: {machine_line(doc)}", "",
             "| measurement | variant | s/call median [min-max] | CPU s/call median | rate median [min-max] "
             "| load [min-max] | contended rounds |", "|---|---|---|---|---|---|---|"]
    for key, res in doc["results"].items():
        for name, s in res["summary"].items():
            sec, rate, ld = s["seconds"], s["rate"], s["load"]
            cpu = fmt(s["cpu_seconds"]["median"]) if "cpu_seconds" in s else "-"
            lines.append(f"| {key} | {name} | {fmt(sec['median'])} [{fmt(sec['min'])}-{fmt(sec['max'])}] | {cpu} "
                         f"| {fmt(rate['median'])} [{fmt(rate['min'])}-{fmt(rate['max'])}] {s['unit']}/s "
                         f"| {ld['median']:.2f} [{ld['min']:.2f}-{ld['max']:.2f}] "
                         f"| {s['contended_rounds']}/{s['rounds']} |")
    if doc.get("derived"):
        lines += ["", "| figure | median [min-max] | contended |", "|---|---|---|"]
        for key, d in doc["derived"].items():
            if isinstance(d, dict) and "median" in d:
                mark = f"yes ({d['contended_rounds']} rounds)" if d.get("contended") else "no"
                lines.append(f"| {key} | {fmt(d['median'])} [{fmt(d['min'])}-{fmt(d['max'])}] | {mark} |")
            else:
                lines.append(f"| {key} | {d} | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Print result files of the benchmark discipline as Markdown.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table", help="Markdown table of one or more result files.")
    t.add_argument("files", nargs="+", type=Path)
    m = sub.add_parser("machine", help="This machine as JSON.")
    m.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.cmd == "machine":
        print(json.dumps(machine(args.threads), indent=1))
        return 0
    print("\n".join(table(json.loads(f.read_text(encoding="utf-8"))) for f in args.files), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
