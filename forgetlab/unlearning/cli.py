"""``forgetlab eco world|evaluate|bench``: export the synthetic world in the published layouts, score any model or
guard on a published suite, run the results table.

Plain typer commands on :data:`app`; ``forgetlab.cli`` mounts them beside ECO's own commands (``forgetlab eco``),
so the method never imports its judge. Heavy imports stay inside the commands. Bad input raises
:class:`~forgetlab.errors.ForgetlabError`, which the top-level ``main`` prints as one line with exit code 2.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ..eco.placement import Placement
from ..errors import BadInput
from ..options import config_command
from ..progress import Tasks, quiet_transformers
from ..runs import dumps_json
from .suites import EvalOptions

app = typer.Typer(no_args_is_help=True, help="The self-contained unlearning benchmark.")


@app.command("world")
def world_cmd(out: Path = typer.Option(..., "--out", help="Folder for the files (new or empty)."),
              answers: str = typer.Option("tofu", "--answers", help="Answer style: tofu | name-free."),
              authors: int = typer.Option(100, "--authors", help="Number of fictitious authors (holdout incl.)."),
              layouts: str = typer.Option("tofu,muse,wmdp,mmlu", "--layouts",
                                          help="Published layouts to write, each into OUT/<layout>/: "
                                               "tofu, muse, wmdp, mmlu (comma-separated)."),
              seed: int = typer.Option(0, "--seed", help="Seed of every draw of the world."),
              overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty --out folder.")) -> None:
    """Export the synthetic fictitious-author world in the published layouts of TOFU, MUSE, WMDP and MMLU."""
    from ..runs import atomic_write_json, prepare_out_dir
    from .formats import WRITERS, write_layouts
    from .world import WorldConfig, make_world, world_record

    names = tuple(x.strip() for x in layouts.split(",") if x.strip())
    for name in names or ("",):
        WRITERS.check(name, "layouts")
    w = make_world(WorldConfig(n_authors=authors, answer_style=answers, seed=seed))
    prepare_out_dir(out, overwrite=overwrite)
    files = write_layouts(w, out, names)
    atomic_write_json(out / "world.json", world_record(w))
    sizes = {s: len(w.forget(s)) for s in w.splits}
    print(f"wrote {len(files) + 1} files to {out} ({', '.join(names)}): forget split sizes {sizes}, "
          f"holdout {len(w.items(w.holdout))}")


@app.command("evaluate")
@config_command(Placement, param="placement")
@config_command(EvalOptions, param="opts")
def evaluate_cmd(opts: EvalOptions, placement: Placement,
                 model: str = typer.Option(..., "--model", help="The model to score: a guard folder (written by "
                                           "'eco fit'), a Hugging Face model folder or a hub id."),
                 suite: str = typer.Option(..., "--suite", help="tofu, muse, wmdp or mmlu."),
                 data: Path = typer.Option(..., "--data", help="Folder of the suite's files in their published "
                                           "layout (see `forgetlab eco world`)."),
                 base_model: str = typer.Option("", "--base-model", help="Also score this model (e.g. the model "
                                                "the guard wraps), side by side."),
                 retain_model: str = typer.Option("", "--retain-model", help="Also score the model never trained "
                                                  "on the forget set: adds forget quality (TOFU) and PrivLeak."),
                 out: Path = typer.Option(None, "--out", help="Write the full record (JSON) here."),
                 quiet: bool = typer.Option(False, "--quiet", help="No progress lines on stderr.")) -> None:
    """Score a model or a guard on TOFU, MUSE, WMDP or MMLU data, beside a base and a retain model."""
    import sys

    from ..runs import atomic_write_json
    from .suites import SUITES, run_evaluation

    SUITES.check(suite, "suite")
    if out is not None and out.is_dir():
        raise BadInput("out", str(out), "a file path for the JSON record (this is a folder)")
    quiet_transformers()
    models = {"model": model, **({"base": base_model} if base_model else {}),
              **({"retain": retain_model} if retain_model else {})}
    say = None if quiet else (lambda s: print(f"... {s}", file=sys.stderr, flush=True))
    record = run_evaluation(suite, data, models, placement, opts, progress=say)
    if out is not None:
        atomic_write_json(out, record)
    print(dumps_json({"suite": suite, "metrics": _rounded(record["metrics"]),
                      "vs_retain": _rounded(record["vs_retain"])}, indent=1))


def _rounded(obj):
    """Floats rounded to 4 digits for the printed summary (the --out record keeps full precision)."""
    if isinstance(obj, float):
        return round(obj, 4) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return obj


@app.command("lm-eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                         "help_option_names": []})
def lm_eval_cmd(ctx: typer.Context) -> None:
    """lm-evaluation-harness with the guard model type 'forgetlab-eco' registered; every argument is lm-eval's,
    e.g. --model forgetlab-eco --model_args guard=GUARD_DIR,dtype=bfloat16 --tasks mmlu (needs the lm-eval extra)."""
    import importlib.util

    if importlib.util.find_spec("lm_eval") is None:
        raise BadInput("lm-eval", "not installed", "pip install 'forgetlab[lm-eval]'")
    from .harness import run_cli

    run_cli(list(ctx.args))


@app.command("bench")
def bench_cmd(out: Path = typer.Option(..., "--out", help="Folder for results.json/.md and tradeoff.png."),
              scale: str = typer.Option("tiny", "--scale", help="tiny | default."),
              answers: str = typer.Option("name-free", "--answers", help="tofu | name-free."),
              methods: str = typer.Option("eco,ga,gd,npo", "--methods", help="Comma-separated subset."),
              splits: str = typer.Option("", "--splits", help="Comma-separated forget splits (default: all)."),
              cache: Path = typer.Option(None, "--cache",
                                         help="Model cache (default $FORGETLAB_CACHE or ~/.cache/forgetlab)."),
              seed: int = typer.Option(0, "--seed"),
              entity_level: bool = typer.Option(True, "--entity-level/--prompt-level",
                                                help="ECO corrupts the forget-entity tokens of a flagged prompt "
                                                     "(default) or the whole prompt."),
              flag_entities: bool = typer.Option(True, "--flag-entities/--classifier-only",
                                                 help="Flag prompts naming a forget author as well as those the "
                                                      "classifier flags (default), or the classifier alone."),
              overwrite: bool = typer.Option(False, "--overwrite"),
              quiet: bool = typer.Option(False, "--quiet")) -> None:
    """Run the unlearning benchmark: target, retain, ECO (deployment + paper protocols), GA, GD, NPO."""
    from .bench.run import run_bench

    quiet_transformers()
    ms = tuple(m.strip() for m in methods.split(",") if m.strip())
    with Tasks(not quiet) as tasks:
        res = run_bench(out, scale, answers, ms, cache_dir=cache, overwrite=overwrite,
                        progress=None if quiet else tasks, seed=seed,
                        splits=tuple(x.strip() for x in splits.split(",") if x.strip()) or None,
                        entity_level=entity_level, flag_entities=flag_entities)
    print(f"wrote {', '.join(str(p) for p in res.files.values())} ({res.timings['total']:.0f} s)")
