"""`forgetlab grok train|prune|analytic|reproduce|sweep|phase-diagram`: parse, validate, call the library, print.

The options of ``train`` are the fields of :class:`~forgetlab.grok.train.TrainConfig` (defaults and help stated
once, on the fields)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..hardware import set_torch_threads
from ..options import config_command, field_help
from ..output import emit, status, warn
from .config import SEED_MAX, TrainConfig
from .phases import DIVERGED, diverged_warning
from .sweep.cli import phase_diagram_command, sweep_command

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.command("train")
@config_command(TrainConfig)
def train_command(
    config: TrainConfig,
    out: Path = typer.Option(..., "--out", help="Output folder (new or empty)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace what a non-empty output folder holds "
                                   "(the new run is swapped in whole when it is written)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or status lines on stderr."),
    threads: int = typer.Option(0, help="torch CPU threads (0 = torch default; 1 is faster on a busy CPU)."),
) -> None:
    """Train one network and write config.json, history.jsonl, model.safetensors, summary.json and plots.

    Prints the run's summary as one JSON object on stdout. The run folder appears whole or not at all; a second
    command writing the same folder is refused while this one runs."""
    cfg = config.validate()  # before torch loads: bad settings answer at once
    from ..folders import claim_out_dir
    from ..runs import write_folder_atomically
    from .precision import check_matmul_precision
    from .record import save_run
    from .train import train

    check_matmul_precision(cfg.matmul_precision)
    _check_memory(cfg)
    set_torch_threads(threads)
    with claim_out_dir(out, overwrite=overwrite, swapped=True) as out_dir:
        result = train(cfg, progress=not quiet)
        write_folder_atomically(out_dir, lambda tmp: save_run(tmp, result), replace=lambda old: overwrite)
    status(not quiet)(f"wrote {out_dir}")
    if (line := diverged_warning([result.summary])) is not None:
        warn(line)
    if cfg.xi > 0 and result.summary["n_corrupted"] == 0:
        warn(f"xi {cfg.xi} of {result.extra['n_train']} training pairs rounds down to no corrupted label: this run "
             "has no forget set (raise alpha or xi)")
    emit(result.summary)


def _check_memory(cfg, with_batch_size: bool = True) -> None:
    """Refuse a run whose estimated peak memory exceeds the memory available now, before allocating any (the
    message names the batch size only where the command has one)."""
    from ..errors import BadInput
    from .sweep.run import available_memory_bytes
    from .train import estimate_batch_bytes

    need, have = estimate_batch_bytes([cfg]), available_memory_bytes()
    if need > have:
        got, lower = f"p={cfg.p}, width={cfg.width}", "p or width"
        if with_batch_size:
            got, lower = f"{got}, batch_size={cfg.batch_size}", "p, width or batch size"
        raise BadInput("p/width", got, f"a run that fits in memory: this one needs about {need / 2**30:.1f} GiB "
                       f"and {have / 2**30:.1f} GiB are available (lower {lower})")


def _check_cases_memory(paper: list[str], arch: list[str], p: int) -> None:
    """Refuse, before any folder or training, cases whose runs would not fit in memory at modulus ``p`` (a
    `--p` of 10^21 is an integer >= 3, and its first tensor alone is larger than any machine)."""
    from .arch_cases import arch_case_configs
    from .cases import case_configs
    from .config import check_p_op

    check_p_op(p, "add")
    configs = [c for name, c in case_configs(p).items() if name in paper]
    if arch:
        configs += [c for name, cs in arch_case_configs(p).items() if name in arch for c in cs]
    for cfg in configs:
        _check_memory(cfg)


@app.command("prune")
def prune_command(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A folder written by `forgetlab grok train`."),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Seed of the random pruning order."),
) -> None:
    """Pruning curves by IPR order (low, high, random): writes prune.json and prune.png into RUN_DIR.

    Prints the curves (fraction pruned -> test accuracy) as one JSON object on stdout."""
    from ..errors import BadInput
    from ..runs import atomic_write_json, read_json
    from .data import make_dataset
    from .plots import plot_prune
    from .prune import check_state, prune_curves
    from .record import load_config, load_state

    if not run_dir.is_dir():
        raise BadInput("RUN_DIR", str(run_dir), "a folder written by `forgetlab grok train`")
    if not (run_dir / "summary.json").is_file():
        raise BadInput("RUN_DIR", str(run_dir), "a finished run of `forgetlab grok train` (no summary.json here: "
                       "the run did not finish)")
    summary = read_json(run_dir / "summary.json")
    if not isinstance(summary, dict):
        raise BadInput("RUN_DIR", str(run_dir), "a finished run of `forgetlab grok train` (its summary.json is not "
                       "a JSON object)")
    if summary.get("phase") == DIVERGED:
        raise BadInput("RUN_DIR", str(run_dir), "a run that did not diverge (this one's loss or weights became "
                       "NaN or infinite: retrain it with a smaller --lr)")
    cfg = load_config(run_dir)
    if cfg.model != "mlp":
        raise BadInput("model", cfg.model, "mlp (pruning acts on hidden neurons of the MLP)")
    if cfg.depth != 2:
        raise BadInput("depth", cfg.depth, "2 (pruning by IPR acts on the 2-layer MLP's neurons)")
    state = load_state(run_dir)
    p, n = check_state(state, str(run_dir / "model.safetensors"))
    if (p, n) != (cfg.p, cfg.width):
        raise BadInput("model.safetensors", f"p={p}, N={n}", f"p={cfg.p}, N={cfg.width} as in config.json")
    ds = make_dataset(cfg.p, cfg.op, cfg.alpha, cfg.xi, split_seed=cfg.split_seed, label_seed=cfg.label_seed)
    curves = prune_curves(state, ds, act=cfg.act, seed=seed, bn_placement=cfg.batchnorm_placement)
    atomic_write_json(run_dir / "prune.json", curves)
    plot_prune(curves, run_dir / "prune.png", f"pruning {run_dir.name}")
    emit({"prune_json": str(run_dir / "prune.json"), "prune_png": str(run_dir / "prune.png"), "curves": curves})


@app.command("analytic")
def analytic_command(
    p: int = typer.Option(97, help="Modulus, >= 3 (the paper's 97)."),
    width: int = typer.Option(500, help="Hidden width N."),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Seed of frequencies and phases."),
) -> dict:
    """Accuracy on all p^2 pairs and mean IPR of the analytic periodic solution (Gromov 2023), as one JSON
    object on stdout."""
    import torch

    from ..errors import BadInput
    from .config import check_p_op
    from .data import make_dataset
    from .fourier import analytic_solution, neuron_ipr
    from .prune import evaluate_states

    check_p_op(p, "add")
    if width < 1:
        raise BadInput("width", width, "an integer >= 1")
    _check_memory(TrainConfig(p=p, width=width, alpha=0.5, xi=0.0), with_batch_size=False)  # all p^2 pairs at once
    U, V, W = analytic_solution(p, width, torch.Generator().manual_seed(seed))
    ds = make_dataset(p, "add", 0.5, 0.0)
    m = evaluate_states([{"U": U, "V": V, "W": W}], ds)[0]
    res = {"p": p, "width": width, "seed": seed,
           "accuracy": (m["train_acc"] * ds.n_train + m["test_acc"] * ds.n_test) / ds.size,
           "mean_ipr": float(neuron_ipr(U, V, W).mean())}
    emit(res)
    return res


def _selected_cases(cases: str | None, init_scale: float) -> tuple[list[str], list[str]]:
    """(A cases, App. G cases) named by ``--cases`` (default: the A cases), or :class:`BadInput` for an unknown
    case or an initial scale the selection cannot take (A cases' bands are the authors' initialization's)."""
    from ..errors import BadInput
    from .arch_cases import ARCH_CASES
    from .cases import CASES

    names = ", ".join([*CASES, *ARCH_CASES])
    wanted = list(CASES) if cases is None else [c.strip() for c in cases.split(",") if c.strip()]
    if not wanted:
        raise BadInput("cases", cases, f"one or more of {names}, comma-separated (leave --cases out for A0 to A9)")
    unknown = [c for c in wanted if c not in CASES and c not in ARCH_CASES]
    if unknown:
        raise BadInput("cases", unknown[0], f"any of {names}")
    TrainConfig(init_scale=init_scale).validate()  # the field's own check and message
    paper = [c for c in wanted if c in CASES]
    if paper and init_scale != 1.0:
        raise BadInput("init_scale", init_scale, "1 when A cases are selected (their bands are the authors' "
                       "initialization's); another scale with T and D cases only")
    return paper, [c for c in wanted if c in ARCH_CASES]


@app.command("reproduce")
def reproduce_command(
    out: Path = typer.Option(Path("out/grok-reproduce"), "--out", help="Output folder."),
    cases: str | None = typer.Option(None, help="Comma-separated cases, any of: A0, A1, A2, A3, A4, A5, A6, A7, "
                                     "A8, A9 (the paper's MLP results), T1, T2, T3, T4, D1, D2, D3, D4 (App. G: "
                                     "Transformer, 3-layer MLP; 3 seeds each). Default: A0 to A9."),
    p: int = typer.Option(97, "--p", help="Modulus (the paper's 97; another p changes what the bands mean)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty output folder (the selected "
                                   "cases' folders and results are replaced, other files kept)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted call in the same --out: App. G "
                                "runs (T, D cases) that finished with the same config are read back, not "
                                "trained again; A cases are always trained."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or status lines on stderr."),
    threads: int = typer.Option(0, help="torch CPU threads (0 = torch default; 1 is faster on a busy CPU)."),
    matmul_precision: str = typer.Option("fp32", "--matmul-precision", help=field_help(TrainConfig,
                                         "matmul_precision") + " Applies to every case's training."),
    init_scale: float = typer.Option(1.0, "--init-scale", help=field_help(TrainConfig, "init_scale") + " For the "
                                     "App. G cases (T, D) only: another scale is refused when A cases are selected "
                                     "(the default selection)."),
) -> None:
    """Run the paper's cases, write reproduce.json/.md (A cases) and arch.json/.md (T, D cases) into
    subfolders; exit 1 if a case misses its band.

    Prints one JSON object on stdout: every case's verdict and the files written."""
    from ..folders import claim_out_dir
    from .arch_cases import run_arch_cases
    from .cases import run_cases
    from .precision import check_matmul_precision

    check_matmul_precision(matmul_precision)
    paper, arch = _selected_cases(cases, init_scale)
    set_torch_threads(threads)
    _check_cases_memory(paper, arch, p)
    results, files = [], []
    with claim_out_dir(out, resume=True):  # the runners check the folder's content themselves
        if paper:
            where = out / "cases" if arch else out
            results += run_cases(where, paper, p=p, progress=not quiet, overwrite=overwrite or resume,
                                 matmul_precision=matmul_precision)
            files += [str(where / "reproduce.json"), str(where / "reproduce.md")]
        if arch:
            where = out / "arch" if paper else out
            results += run_arch_cases(where, arch, p=p, progress=not quiet, overwrite=overwrite, resume=resume,
                                      matmul_precision=matmul_precision, init_scale=init_scale)
            files += [str(where / "arch.json"), str(where / "arch.md")]
    say = status(not quiet)
    for r in results:
        say(f"{r.name} {'PASS' if r.passed else 'FAIL'} {r.seconds:7.1f}s  {r.claim}")
    say("wrote " + ", ".join(files))
    emit({"passed": all(r.passed for r in results), "files": files,
          "cases": [{"case": r.name, "passed": r.passed, "seconds": r.seconds, "claim": r.claim} for r in results]})
    if not all(r.passed for r in results):
        raise typer.Exit(1)


app.command("sweep")(sweep_command)
app.command("phase-diagram")(phase_diagram_command)
