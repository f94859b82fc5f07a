"""``forgetlab eco world|evaluate|bench``: export the synthetic world, score any model, run the results table.

Plain typer commands on :data:`app`; ``forgetlab.cli`` mounts them beside ECO's own commands (``forgetlab eco``),
so the method never imports its judge. Heavy imports stay inside the commands. Bad input raises
:class:`~forgetlab.errors.ForgetlabError`, which the top-level ``main`` prints as one line with exit code 2.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import typer

from ..errors import BadInput
from ..output import emit, status
from ..progress import Tasks, quiet_transformers

app = typer.Typer(no_args_is_help=True, help="The self-contained unlearning benchmark.")


ANSWERS_HELP = ("Answer style, one of: tofu (answers name the author, as TOFU's do), name-free (answers never "
                "name the author).")


@app.command("world")
def world_cmd(out: Path = typer.Option(..., "--out", help="Folder for the JSONL files (new or empty)."),
              answers: str = typer.Option("tofu", "--answers", help=ANSWERS_HELP + " The default is tofu: the "
                                          "export is TOFU's format, answers included (the bench defaults to "
                                          "name-free, see `eco bench --help`)."),
              authors: int = typer.Option(100, "--authors", help="Number of fictitious authors (holdout incl.)."),
              seed: int = typer.Option(0, "--seed", help="Seed of the world (names, facts, splits)."),
              overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty --out folder."),
              quiet: bool = typer.Option(False, "--quiet", help="No status lines on stderr.")) -> None:
    """Export the synthetic fictitious-author world as JSONL in TOFU's format.

    Prints one JSON object on stdout: the files written and the size of each forget split."""
    from ..folders import claim_out_dir
    from .world import WorldConfig, export_world, make_world

    w = make_world(WorldConfig(n_authors=authors, answer_style=answers, seed=seed))
    with claim_out_dir(out, overwrite=overwrite):
        files = export_world(w, out)
    sizes = {s: len(w.forget(s)) for s in w.splits}
    status(not quiet)(f"wrote {len(files)} files to {out}")
    emit({"out": str(out), "files": [str(f) for f in files], "forget_split_sizes": sizes,
          "holdout_size": len(w.items(w.holdout))})


@app.command("evaluate")
def evaluate_cmd(model: Path = typer.Option(..., "--model", help="A Hugging Face causal LM folder."),
                 data: Path = typer.Option(..., "--data", help="Folder of TOFU-format JSONL (see `world`)."),
                 split: str = typer.Option("forget10", "--split", help="Forget split file stem in DATA."),
                 retain_model: Path = typer.Option(None, "--retain-model",
                                                   help="Retain model folder: adds forget quality and PrivLeak "
                                                        "(default: none, those are left out)."),
                 out: Path = typer.Option(None, "--out", help="Write every metric, with the run record, to this JSON "
                                          "file (default: none; stdout has the scalar metrics)."),
                 no_generate: bool = typer.Option(False, "--no-generate", help="Skip generation (ROUGE)."),
                 quiet: bool = typer.Option(False, "--quiet", help="No status lines on stderr.")) -> None:
    """Score any model on any TOFU-format data: forget truth ratio, ROUGE, model utility, MIA AUCs.

    Prints the scalar metrics as one JSON object on stdout (all of them in --out when given)."""
    from transformers import AutoTokenizer

    from ..runs import atomic_write_json, run_record
    from .evaluate import compare, evaluate_model, load_eval_data
    from .lm import load_lm

    quiet_transformers()
    d = load_eval_data(data, split)
    if not (model / "config.json").is_file():
        raise BadInput("model", str(model), "a Hugging Face model folder (config.json, weights, tokenizer)")
    d.check_encodable(AutoTokenizer.from_pretrained(model))  # before loading any weights
    say = None if quiet else status()
    t0 = time.perf_counter()
    m, tok = load_lm(model)
    ev = evaluate_model(m, tok, d, generate=not no_generate, progress=say)
    result = {"model": str(model), "split": split, **ev.summary, "utility_parts": ev.utility_parts,
              "mia_auc": ev.mia_auc}
    if retain_model is not None:
        rm, rtok = load_lm(retain_model)
        result.update(compare(ev, evaluate_model(rm, rtok, d, generate=False)))
    result["seconds"] = time.perf_counter() - t0
    if out is not None:
        atomic_write_json(out, {**run_record({"model": model, "data": data, "split": split}), "metrics": result})
    emit({k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
          for k, v in result.items() if not isinstance(v, dict)}, indent=1)


@app.command("bench")
def bench_cmd(out: Path = typer.Option(..., "--out", help="Folder for results.json/.md and tradeoff.png."),
              scale: str = typer.Option("default", "--scale", help="One of: default (the benchmark: 100 authors, "
                                        "forget01/05/10; about 13 min on 2 cores from an empty model cache), tiny "
                                        "(20 authors, forget10 only: a pipeline check in about a minute)."),
              answers: str = typer.Option("name-free", "--answers", help=ANSWERS_HELP + " The default is "
                                          "name-free: a TOFU-style answer names the author, which leaks the "
                                          "forgotten facts past any prompt-side guard (docs/benchmarks/"
                                          "unlearning.md)."),
              methods: str = typer.Option("eco,ga,gd,npo", "--methods", help="Comma-separated subset of: eco, ga, "
                                          "gd, npo."),
              splits: str = typer.Option("", "--splits", help="Comma-separated forget splits of the scale (default: "
                                         "all of them)."),
              cache: Path = typer.Option(None, "--cache",
                                         help="Model cache (default $FORGETLAB_CACHE or ~/.cache/forgetlab)."),
              seed: int = typer.Option(0, "--seed", help="Seed of the classifier splits, the corruption noise and "
                                       "the fits (the models are cached by content)."),
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
              overwrite: bool = typer.Option(False, "--overwrite", help="Reuse a non-empty --out folder."),
              quiet: bool = typer.Option(False, "--quiet", help="No progress display on stderr.")) -> None:
    """Run the unlearning benchmark: target, retain, ECO (deployment + paper protocols), GA, GD, NPO.

    Prints one JSON object on stdout: the files written, the models (and guards) it scored, and the time."""
    from ..folders import claim_out_dir
    from .bench.run import run_bench

    quiet_transformers()
    ms = tuple(m.strip() for m in methods.split(",") if m.strip())
    with claim_out_dir(out, resume=True), Tasks(not quiet) as tasks:  # run_bench checks the content itself
        res = run_bench(out, scale, answers, ms, cache_dir=cache, overwrite=overwrite,
                        progress=None if quiet else tasks, seed=seed,
                        splits=tuple(x.strip() for x in splits.split(",") if x.strip()) or None,
                        entity_level=entity_level, flag_entities=flag_entities)
    status(not quiet)(f"wrote {', '.join(str(p) for p in res.files.values())} ({res.timings['total']:.0f} s)")
    emit({"files": {k: str(v) for k, v in res.files.items()}, "seconds": res.timings["total"],
          "models": res.config.get("models"), "guards": res.config.get("guards")})
