"""`forgetlab grok sweep` and `forgetlab grok phase-diagram`: thin wrappers over the sweep library (mounted by
``forgetlab.grok.cli``)."""

from __future__ import annotations

from pathlib import Path

import typer

from ...errors import BadInput
from ...output import emit, status, warn
from .spec import DEFAULT_TRAINER, preset_names, preset_path


def _preset_sizes() -> str:
    """``name (N runs at p=P)`` for each shipped preset, read from the presets themselves (help text)."""
    import tomllib

    out = []
    for name in preset_names():
        data = tomllib.loads(preset_path(name).read_text(encoding="utf-8"))
        n = 1
        for values in data.get("grid", {}).values():
            n *= values["num"] if isinstance(values, dict) else len(values)
        if data.get("zip"):
            n *= len(next(iter(data["zip"].values())))
        out.append(f"{name} ({n:,} runs at p={data.get('fixed', {}).get('p', 97)})")
    return ", ".join(out)


def sweep_command(
    out: Path = typer.Option(..., "--out", help="Sweep folder (created; an existing one of the same sweep resumes)."),
    spec: Path | None = typer.Option(None, "--spec", help="Sweep spec TOML file (default: none; give --spec, "
                                     "--preset or --grid)."),
    preset: str | None = typer.Option(None, "--preset", help="A shipped spec, one of: " + _preset_sizes()
                                      + ". The p=97 presets take hours on a CPU; small takes minutes (default: none)."),
    set_: list[str] = typer.Option([], "--set", help="Fix a TrainConfig field: key=value (repeatable)."),
    grid: list[str] = typer.Option([], "--grid", help="Sweep a field: key=start:stop:num or key=a,b,c "
                                   "(repeatable)."),
    backend: str = typer.Option("local", "--backend", help="Where batches train, one of: local, ray."),
    workers: int = typer.Option(1, "--workers", help="Local: worker processes, each with cores // workers torch "
                                "threads unless --threads (0 = one process per usable core; 1 = this process). "
                                "Ray: CPUs (0 = all)."),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads of this process (one worker) or of each "
                                "worker process (0 = the default: torch's, or cores // workers; 1 is faster on a "
                                "busy CPU). Local backend only."),
    max_memory: float | None = typer.Option(None, "--max-memory", help="GiB per batch (default: the spec's "
                                            "max_memory_gb, else half the free memory)."),
    keep_history: bool | None = typer.Option(None, "--keep-history/--no-keep-history",
                                             help="Store each run's history (every log_every steps) "
                                                  "(default: the spec's keep_history)."),
    save_weights: bool | None = typer.Option(None, "--save-weights/--no-save-weights",
                                             help="Store each run's final weights as safetensors "
                                                  "(default: the spec's save_weights)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or status lines on stderr."),
    estimate: bool = typer.Option(False, "--estimate", help="Only print the estimated wall time on this "
                                  "machine and exit. It is timed by training each batch shape's first batch for "
                                  "a few steps: seconds at small p, minutes per shape for the p=97 presets."),
    trainer: str = typer.Option(DEFAULT_TRAINER, "--trainer", hidden=True, help="Trainer module (tests)."),
) -> None:
    """Train a grid of runs as batches, resumably; write DIR/runs/*.json and DIR/results.csv.

    Prints one JSON object on stdout: run counts, seconds, the results.csv path and the phase counts."""
    import dataclasses

    from .backends import BACKENDS
    from .run import run_sweep
    from .spec import build_spec, load_trainer

    BACKENDS.check(backend)
    cfg_cls = load_trainer(trainer).TrainConfig
    sweep_spec = build_spec(spec_path=spec, preset=preset, fixed=set_, grid=grid, config_cls=cfg_cls)
    changes = {k: v for k, v in (("keep_history", keep_history), ("save_weights", save_weights)) if v is not None}
    if changes:
        sweep_spec = dataclasses.replace(sweep_spec, **changes)
    if estimate:
        from ...hardware import set_torch_threads
        from .run import check_backend_threads

        check_backend_threads(backend, threads)
        set_torch_threads(threads)  # the probes train in this process
        _print_estimate(sweep_spec, trainer, out, workers, quiet)
        return
    res = run_sweep(sweep_spec, out, backend=backend, workers=workers, progress=not quiet, trainer=trainer,
                    max_memory_gb=max_memory, threads=threads)
    _report_sweep(res, quiet)


def _print_estimate(sweep_spec, trainer: str, out: Path, workers: int, quiet: bool) -> None:
    """``--estimate``: the estimated wall time on this machine (status lines), and as JSON on stdout."""
    import dataclasses

    from .estimate import estimate_sweep
    from .store import SweepStore

    say = status(not quiet)
    est = estimate_sweep(sweep_spec, trainer=trainer, finished=SweepStore(out).finished(), say=say)
    say(est.describe(workers))
    for sh in est.shapes:
        say(f"  {sh.runs} runs of shape {sh.shape}: {sh.step_seconds * 1e3:.1f} ms per step of a batch "
            f"of {sh.probe_runs}, {sh.seconds:.0f} s")
    emit({"estimate": dataclasses.asdict(est), "workers": workers})


def _report_sweep(res, quiet: bool) -> None:
    """A finished sweep's counts and phases: status lines, and one JSON object on stdout."""
    from collections import Counter

    from ..phases import diverged_warning
    from .store import read_results_csv

    rows = read_results_csv(res.results_csv)
    phases = Counter(r["phase"] for r in rows)
    say = status(not quiet)
    say(f"{res.n_runs} runs in {res.n_batches} batches: {res.n_skipped} done earlier (skipped), "
        f"{res.n_trained} trained in {res.seconds:.1f} s ({res.backend}) -> {res.results_csv}")
    say("phases: " + ", ".join(f"{k} {v}" for k, v in sorted(phases.items())))
    if (line := diverged_warning(rows)) is not None:
        warn(line)
    emit({"out": str(res.out_dir), "n_runs": res.n_runs, "n_batches": res.n_batches, "n_skipped": res.n_skipped,
          "n_trained": res.n_trained, "n_damaged": res.n_damaged, "seconds": res.seconds, "backend": res.backend,
          "results_csv": str(res.results_csv), "phases": dict(sorted(phases.items())),
          "batch_runs": res.batch_runs, "batch_probe_seconds_per_run_step": res.batch_probe})

def phase_diagram_command(
    sweep_dir: Path = typer.Argument(..., metavar="SWEEP_DIR",
                                     help="A sweep folder (sweep.json, and runs/ or results.csv)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write the PNGs and phase_counts.json (default: "
                                    "SWEEP_DIR/plots; files of the same names there are replaced)."),
    dynamics: bool = typer.Option(True, "--dynamics/--no-dynamics",
                                  help="Also plot training curves of runs that kept their history."),
    table: bool = typer.Option(False, "--table", help="Only print the phase counts per panel as a Markdown "
                               "table (read from DIR/results.csv; no plots)."),
) -> None:
    """Draw the alpha x xi phase diagram of each panel, one combined figure, and training dynamics.

    Prints the written PNG paths as one JSON object on stdout."""
    from .plots import PHASE_COUNTS, plot_dynamics, plot_phase_diagram, plots_dir

    if table:
        from .tables import phase_counts_markdown

        if out is not None:
            raise BadInput("out", str(out), "no --out with --table (the table goes to stdout; no files are written)")
        typer.echo(phase_counts_markdown(sweep_dir), nl=False)
        return
    if not (sweep_dir / "sweep.json").is_file():
        raise BadInput("SWEEP_DIR", str(sweep_dir), "a sweep folder (no sweep.json there)")
    if out is not None and out.exists() and not out.is_dir():
        raise BadInput("out", str(out), "a folder for the figures (this is a file)")
    paths = plot_phase_diagram(sweep_dir, out)
    if dynamics:
        paths += plot_dynamics(sweep_dir, out)
    emit({"files": [str(p) for p in [*paths, plots_dir(sweep_dir, out) / PHASE_COUNTS]]})
