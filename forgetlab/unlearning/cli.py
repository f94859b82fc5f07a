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
from ..output import emit, status
from ..progress import Tasks, quiet_transformers
from .suites import EvalOptions

app = typer.Typer(no_args_is_help=True, help="The self-contained unlearning benchmark.")


ANSWERS_HELP = ("Answer style, one of: tofu (answers name the author, as TOFU's do), name-free (answers never "
                "name the author).")


@app.command("world")
def world_cmd(out: Path = typer.Option(..., "--out", help="Folder for the files (new or empty)."),
              answers: str = typer.Option("tofu", "--answers", help=ANSWERS_HELP + " The default is tofu: the "
                                          "export is TOFU's format, answers included (the bench defaults to "
                                          "name-free, see `eco bench --help`)."),
              authors: int = typer.Option(100, "--authors", help="Number of fictitious authors (holdout incl.)."),
              layouts: str = typer.Option("tofu,muse,wmdp,mmlu", "--layouts",
                                          help="Published layouts to write, each into OUT/<layout>/: "
                                               "tofu, muse, wmdp, mmlu (comma-separated)."),
              seed: int = typer.Option(0, "--seed", help="Seed of the world (names, facts, splits)."),
              overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty --out folder."),
              quiet: bool = typer.Option(False, "--quiet", help="No status lines on stderr.")) -> None:
    """Export the synthetic fictitious-author world in the published layouts of TOFU, MUSE, WMDP and MMLU.

    Prints one JSON object on stdout: the files written and the size of each forget split."""
    from ..folders import claim_out_dir
    from ..runs import atomic_write_json, write_folder_atomically
    from .formats import WRITERS, write_layouts
    from .world import WorldConfig, make_world, world_record

    names = tuple(x.strip() for x in layouts.split(",") if x.strip())
    for name in names or ("",):
        WRITERS.check(name, "layouts")
    if len(set(names)) < len(names):
        raise BadInput("layouts", layouts, "each layout once: tofu, muse, wmdp, mmlu (comma-separated)")
    w = make_world(WorldConfig(n_authors=authors, answer_style=answers, seed=seed))
    written: list[Path] = []

    def write(tmp: Path) -> None:  # the whole world, swapped in at once: --overwrite leaves nothing of the old one
        written[:] = [out / f.relative_to(tmp) for f in write_layouts(w, tmp, names)]
        atomic_write_json(tmp / "world.json", world_record(w))

    with claim_out_dir(out, overwrite=overwrite, swapped=True):
        write_folder_atomically(out, write, replace=lambda old: overwrite)
    files = [*written, out / "world.json"]
    sizes = {s: len(w.forget(s)) for s in w.splits}
    status(not quiet)(f"wrote {len(files)} files to {out} ({', '.join(names)})")
    emit({"out": str(out), "layouts": list(names), "files": [str(f) for f in files], "forget_split_sizes": sizes,
          "holdout_size": len(w.items(w.holdout))})


@app.command("evaluate")
@config_command(Placement, param="placement")
@config_command(EvalOptions, param="opts")
def evaluate_cmd(opts: EvalOptions, placement: Placement,
                 model: str = typer.Option(..., "--model", help="The model to score: a guard folder (written by "
                                           "'eco fit'), a Hugging Face model folder or a hub id."),
                 suite: str = typer.Option(..., "--suite", help="One of: tofu, muse, wmdp, mmlu."),
                 data: Path = typer.Option(..., "--data", help="Folder of the suite's files in their published "
                                           "layout (see `forgetlab eco world`)."),
                 base_model: str = typer.Option("", "--base-model", help="Also score this model (e.g. the model "
                                                "the guard wraps), side by side (default: none)."),
                 retain_model: str = typer.Option("", "--retain-model", help="Also score the model never trained "
                                                  "on the forget set: adds forget quality (TOFU) and PrivLeak "
                                                  "(default: none, those are left out)."),
                 out: Path = typer.Option(None, "--out", help="Write the full record (JSON) to this file (default: "
                                          "none; stdout has the summary)."),
                 quiet: bool = typer.Option(False, "--quiet", help="No status lines on stderr.")) -> None:
    """Score a model or a guard on TOFU, MUSE, WMDP or MMLU data, beside a base and a retain model.

    Prints the metrics (rounded) as one JSON object on stdout; the full record in --out when given."""

    from ..runs import atomic_write_json
    from .suites import SUITES, run_evaluation

    SUITES.check(suite, "suite")
    if out is not None and out.is_dir():
        raise BadInput("out", str(out), "a file path for the JSON record (this is a folder)")
    quiet_transformers()
    models = {"model": model, **({"base": base_model} if base_model else {}),
              **({"retain": retain_model} if retain_model else {})}
    say = None if quiet else status()
    record = run_evaluation(suite, data, models, placement, opts, progress=say)
    if out is not None:
        atomic_write_json(out, record)
    emit({"suite": suite, "metrics": _rounded(record["metrics"]), "vs_retain": _rounded(record["vs_retain"])})


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


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; anything else is a one-line error naming ``--seeds``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        raise BadInput("--seeds", text, "distinct integers >= 0 separated by commas, e.g. 0,1,2")
    return tuple(int(p) for p in parts)


def _bench_results(path: Path) -> dict:
    """A loaded ``results.json`` of `forgetlab eco bench`, or a one-line error naming it."""
    import json

    try:
        res = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BadInput("results", str(path), f"a readable results.json of `forgetlab eco bench` ({e})") from None
    if not isinstance(res, dict) or not {"config", "rows", "summary", "timings"} <= set(res):
        raise BadInput("results", str(path), "a results.json of `forgetlab eco bench` with config, rows, summary "
                       "and timings (rerun the bench to get one)")
    return res


@app.command("bench-merge")
def bench_merge_cmd(results: list[Path] = typer.Argument(..., help="Two or more results.json files of `forgetlab "
                                                         "eco bench` runs with the same settings and distinct seeds."),
                    out: Path = typer.Option(..., "--out", help="Folder for the merged results.json/.md and "
                                             "tradeoff.png."),
                    overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty --out folder.")) -> None:
    """Join bench runs of other seeds (e.g. `--seeds 1` and `--seeds 2` run side by side) into the one record
    `--seeds 0,1,2` would write: every seed's rows, mean +- sd over seeds, each run's machine and timings.

    Prints one JSON object on stdout: the files written and the seeds merged."""
    from ..runs import prepare_out_dir
    from .bench.merge import merge_results
    from .bench.run import write_bench_files

    names = [str(p) for p in results]
    merged = merge_results([_bench_results(p) for p in results], names)
    files = write_bench_files(prepare_out_dir(out, overwrite=overwrite), merged)
    emit({"files": {k: str(v) for k, v in files.items()}, "seeds": merged["seeds"], "merged_from": names})


@app.command("bench-report")
def bench_report_cmd(results: Path = typer.Argument(..., help="A results.json written by `forgetlab eco bench`."),
                     out: Path = typer.Option(..., "--out", help="The Markdown file to write, e.g. "
                                              "docs/benchmarks/unlearning.md (replaced atomically).")) -> None:
    """Render the bench's Markdown report (tables with mean +- sd, machine, load, command) from a results.json.

    Prints one JSON object on stdout: the file written and the run it came from."""
    from ..runs import atomic_write_text
    from .bench.report import render_report

    res = _bench_results(results)
    atomic_write_text(out, render_report(res))
    emit({"file": str(out), "results": str(results), "seeds": res["config"].get("seeds", [0]),
          "measured": res.get("machine", {}).get("date_utc")})


@app.command("bench")
def bench_cmd(out: Path = typer.Option(..., "--out", help="Folder for results.json/.md and tradeoff.png."),
              scale: str = typer.Option("default", "--scale", help="One of: default (the benchmark: 100 authors, "
                                        "forget01/05/10; about 13 min on 2 cores from an empty model cache), tiny "
                                        "(20 authors, forget10 only: a pipeline check in about a minute)."),
              answers: str = typer.Option("name-free", "--answers", help=ANSWERS_HELP + " The default is "
                                          "name-free: a TOFU-style answer names the author, which leaks the "
                                          "forgotten facts past any prompt-side guard (docs/benchmarks/"
                                          "unlearning.md)."),
              methods: str = typer.Option("eco,ga,gd,npo,rmu", "--methods", help="Comma-separated subset of: eco, ga, "
                                          "gd, npo, rmu."),
              splits: str = typer.Option("", "--splits", help="Comma-separated forget splits of the scale (default: "
                                         "all of them)."),
              cache: Path = typer.Option(None, "--cache",
                                         help="Model cache (default $FORGETLAB_CACHE or ~/.cache/forgetlab)."),
              seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2: each runs its own "
                                        "world, models (cached by content), flag rules, corruption noise and fits; "
                                        "the tables give mean +- sd over them. Seed 0 is the scale as defined."),
              entity_level: bool = typer.Option(True, "--entity-level/--prompt-level",
                                                help="ECO corrupts the forget-entity tokens of a flagged prompt "
                                                     "(default) or the whole prompt. `eco fit` defaults to the "
                                                     "whole prompt (the paper's ECO); the bench measures both."),
              flag_entities: bool = typer.Option(True, "--flag-entities/--classifier-only",
                                                 help="Flag prompts naming a forget author as well as those the "
                                                      "classifier flags (default), or the classifier alone. "
                                                      "`eco fit` defaults to the classifier alone (the paper's "
                                                      "rule); on this world the classifier alone misses "
                                                      "many paraphrased forget questions (docs/benchmarks/"
                                                      "unlearning.md)."),
              tune: bool = typer.Option(True, "--tune/--no-tune",
                                        help="Choose each baseline's learning rate and epochs per seed from the "
                                             "scale's grid by ECO's rule (default): unlearn the fit set as a "
                                             "proxy, smallest KS vs never-seen authors' truth ratios, with a "
                                             "utility floor; or run them untuned (UnlearnConfig's defaults)."),
              reseeded: bool = typer.Option(True, "--reseeded-retain/--no-reseeded-retain",
                                            help="Also train a second retain model per split with another seed and "
                                                 "report it as the row retain_reseed: one never-trained model's "
                                                 "forget quality against the other, the ceiling of the column "
                                                 "(default; one more model training per split)."),
              overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty --out folder."),
              quiet: bool = typer.Option(False, "--quiet", help="No progress display on stderr.")) -> None:
    """Run the unlearning benchmark: target, retain, ECO (deployment + paper protocols), GA, GD, NPO, RMU.

    Prints one JSON object on stdout: the files written, the models (and guards) it scored, and the time."""
    from ..folders import claim_out_dir
    from .bench.run import check_options, run_bench

    quiet_transformers()
    ms = tuple(m.strip() for m in methods.split(",") if m.strip())
    seed_list = parse_seeds(seeds)
    check_options(scale, answers, ms, tuple(x.strip() for x in splits.split(",") if x.strip()) or None)
    with claim_out_dir(out, resume=True), Tasks(not quiet) as tasks:  # run_bench checks the content itself
        res = run_bench(out, scale, answers, ms, cache_dir=cache, overwrite=overwrite,
                        progress=None if quiet else tasks, seeds=seed_list,
                        splits=tuple(x.strip() for x in splits.split(",") if x.strip()) or None,
                        entity_level=entity_level, flag_entities=flag_entities, tune=tune, reseeded=reseeded)
    status(not quiet)(f"wrote {', '.join(str(p) for p in res.files.values())} ({res.timings['total']:.0f} s)")
    emit({"files": {k: str(v) for k, v in res.files.items()}, "seconds": res.timings["total"],
          "models": res.config.get("models"), "guards": res.config.get("guards")})
