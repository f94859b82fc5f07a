"""`forgetlab grok sweep` and `forgetlab grok phase-diagram`: thin wrappers over the sweep library (mounted by
``forgetlab.grok.cli``)."""

from __future__ import annotations

from pathlib import Path

import typer

from ...errors import BadInput
from .spec import DEFAULT_TRAINER


def sweep_command(
    out: Path = typer.Option(..., "--out", help="Sweep folder (created; an existing one of the same sweep resumes)."),
    spec: Path | None = typer.Option(None, "--spec", help="Sweep spec TOML file."),
    preset: str | None = typer.Option(None, "--preset", help="A shipped spec: the paper's panels wd, dropout, bn, "
                                      "minibatch; reduced ones wd_p47, dropout_p47, bn_p47, minibatch_p47; small."),
    set_: list[str] = typer.Option([], "--set", help="Fix a TrainConfig field: key=value (repeatable)."),
    grid: list[str] = typer.Option([], "--grid", help="Sweep a field: key=start:stop:num or key=a,b,c."),
    backend: str = typer.Option("local", "--backend", help="local or ray."),
    workers: int = typer.Option(1, "--workers", help="Parallel worker processes (local) or CPUs (ray, 0=all)."),
    max_memory: float | None = typer.Option(None, "--max-memory", help="GiB per batch (default: half free)."),
    keep_history: bool | None = typer.Option(None, "--keep-history/--no-keep-history",
                                             help="Store each run's history (every log_every steps)."),
    save_weights: bool | None = typer.Option(None, "--save-weights/--no-save-weights",
                                             help="Store each run's final weights as safetensors."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    estimate: bool = typer.Option(False, "--estimate", help="Only print the estimated wall time on this "
                                  "machine (timed by a short probe of each batch shape) and exit."),
    trainer: str = typer.Option(DEFAULT_TRAINER, "--trainer", hidden=True),
) -> None:
    """Train a grid of runs as batches, resumably; write DIR/runs/*.json and DIR/results.csv."""
    import dataclasses
    from collections import Counter

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
        from .estimate import estimate_sweep
        from .store import SweepStore

        est = estimate_sweep(sweep_spec, trainer=trainer, finished=SweepStore(out).finished())
        typer.echo(est.describe(workers))
        for sh in est.shapes:
            typer.echo(f"  {sh.runs} runs of shape {sh.shape}: {sh.step_seconds * 1e3:.1f} ms per step of a batch "
                       f"of {sh.probe_runs}, {sh.seconds:.0f} s")
        return
    res = run_sweep(sweep_spec, out, backend=backend, workers=workers, progress=not quiet, trainer=trainer,
                    max_memory_gb=max_memory)
    from .store import read_results_csv

    phases = Counter(r["phase"] for r in read_results_csv(res.results_csv))
    typer.echo(f"{res.n_runs} runs in {res.n_batches} batches: {res.n_skipped} done earlier (skipped), "
               f"{res.n_trained} trained in {res.seconds:.1f} s ({res.backend}) -> {res.results_csv}")
    typer.echo("phases: " + ", ".join(f"{k} {v}" for k, v in sorted(phases.items())))


def phase_diagram_command(
    sweep_dir: Path = typer.Argument(..., help="A sweep folder (with sweep.json and runs/)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write PNGs (default: DIR/plots)."),
    dynamics: bool = typer.Option(True, "--dynamics/--no-dynamics",
                                  help="Also plot training curves of runs that kept their history."),
    table: bool = typer.Option(False, "--table", help="Only print the phase counts per panel as a Markdown "
                               "table (read from DIR/results.csv; no plots)."),
) -> None:
    """Draw the alpha x xi phase diagram of each panel, one combined figure, and training dynamics."""
    from .plots import plot_dynamics, plot_phase_diagram

    if table:
        from .tables import phase_counts_markdown

        typer.echo(phase_counts_markdown(sweep_dir), nl=False)
        return
    if not (sweep_dir / "sweep.json").is_file():
        raise BadInput("DIR", str(sweep_dir), "a sweep folder (no sweep.json there)")
    paths = plot_phase_diagram(sweep_dir, out)
    if dynamics:
        paths += plot_dynamics(sweep_dir, out)
    for p in paths:
        typer.echo(str(p))
