"""What the command-line fuzzer generates, per command: a cheap valid base invocation, then options drawn from
pools that mix valid values, boundary values and garbage, and input files of generated content.

Shared by ``tests/test_fuzz_cli.py`` (a fast profile in ``make test``) and ``benchmarks/fuzz.py`` (the long run):
the strategies, the fixtures they point at, the in-process runner, the stand-ins and the properties checked
(:func:`check`), and :func:`fuzz_command`, which drives one command through hypothesis.
Valid values are kept cheap (tiny p, width, steps; the sweep's sizes overridden small), so an example that
happens to be valid finishes in seconds; commands whose valid run is long by nature (``eco bench``,
``reproduce``, ``eco serve``) run their real argument handling and checks, then a stand-in for the long part
(see :func:`stand_ins`).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import string
import tempfile
import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fix_seed
from hypothesis import strategies as st

NASTY = ["", " ", "-1", "0", "1", "nan", "inf", "-inf", "1e309", "1e-320", "999999999999999999999", "0x10", "1_0",
         "true", "None", "☃", "../..", "/", "a" * 300, "\t", "'", '"', "%s", "{}", "[]", "\\", "é" * 3]
"""Values every pool may draw from: empty, numeric edge cases, non-ASCII, path tricks, very long."""


def pool(*values: Any) -> st.SearchStrategy[str]:
    """An option's values: the listed ones (valid and invalid) or any of :data:`NASTY`, or short random text."""
    return st.one_of(st.sampled_from([str(v) for v in values]), st.sampled_from(NASTY),
                     st.text(alphabet=string.printable + "éü☃東", max_size=12))


INTS = pool(0, 1, 2, 3, -1, -3, 2**31, 2**63, 10**30, "1.5", "3e2")
FLOATS = pool(0.0, 0.1, 0.5, 0.99, 1.0, 1.5, -0.1, 1e-12, 1e12, "nan", "inf", "-inf")
FLAG = st.just(None)  # a flag takes no value
PRECISION = pool("fp32", "bf16", "fp16", "", "BF16")  # bf16 is refused (exit 2) where the CPU has no bf16 units
PLACEMENT = {"--device": pool("cpu", "cuda", "cuda:7", "mps", "meta", "tpu"),
             "--dtype": pool("float32", "bfloat16", "float16", "int8", "auto"),
             "--device-map": pool("auto", "cpu", "balanced", "nope")}
"""Where a command that loads a language model places it (no accelerator here: cuda must be refused cleanly)."""


def content() -> st.SearchStrategy[bytes]:
    """The content of a generated input file: JSONL of plausible or wrong records, broken JSON, deep nesting,
    bytes that are not UTF-8, nothing at all."""
    record = st.dictionaries(st.sampled_from(["prompt", "question", "answer", "choices", "label", "x"]),
                             st.one_of(st.text(max_size=20), st.integers(-3, 5), st.lists(st.text(max_size=8),
                                                                                        max_size=5), st.none()),
                             max_size=4)
    lines = st.lists(record, max_size=6).map(lambda rs: "".join(json.dumps(r) + "\n" for r in rs).encode())
    prompts = st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=8).map(
        lambda ps: "".join(json.dumps({"prompt": p}) + "\n" for p in ps).encode())
    deep = st.integers(500, 60_000).map(lambda n: b"[" * n + b"]" * n + b"\n")
    return st.one_of(prompts, lines, deep, st.binary(max_size=60), st.just(b""), st.just(b"\xff\xfe{}\n"),
                     st.text(max_size=60).map(str.encode))


def commands(fx: dict[str, Path]) -> dict[str, tuple[list[str], dict[str, st.SearchStrategy]]]:
    """``{command: (base argv, {option: value strategy})}`` for every command; ``fx`` holds the fixtures (a
    finished run, a sweep, a base model, a guard, a world export); in a value, ``{file}`` marks a generated input
    file, ``{out}`` the output path, ``{existing}`` a folder holding an earlier result and ``{guard_copy}`` a copy
    of the guard that the command may change."""
    out = st.sampled_from(["{out}", "{out}/deeper", "{file}", str(fx["file"]) + "/sub", "{existing}"])
    return {**_grok(fx, out), **_eco(fx, out)}


def _grok(fx: dict[str, Path], out: st.SearchStrategy) -> dict[str, tuple[list[str], dict[str, st.SearchStrategy]]]:
    """The grok commands' bases and pools (see :func:`commands`)."""
    grok_train = {"--p": pool(5, 7, 11, 13, 2, 4, 9, 97, 10007), "--op": pool("add", "sub", "mul", "div", "pow"),
                  "--alpha": FLOATS, "--xi": FLOATS, "--width": pool(1, 4, 8, 0, -2, 10**7),
                  "--depth": pool(1, 2, 3, 0, -1), "--act": pool("quadratic", "relu", "tanh"), "--wd": FLOATS,
                  "--dropout": FLOATS, "--batchnorm": FLAG, "--no-batchnorm": FLAG, "--layernorm": FLAG,
                  "--batchnorm-placement": pool("post", "pre", "PRE", "mid"), "--init-scale": FLOATS,
                  "--no-layernorm": FLAG, "--batch-size": pool(0, 1, 8, -1, 10**6), "--lr": FLOATS,
                  "--steps": pool(1, 2, 3, 0, -1), "--loss": pool("mse", "ce", "hinge"),
                  "--model": pool("mlp", "transformer", "rnn"), "--seed": INTS, "--split-seed": INTS,
                  "--label-seed": INTS, "--log-every": pool(1, 2, 0, -1), "--threads": pool(0, 1, -1, 10**9),
                  "--matmul-precision": PRECISION, "--param-groups": pool("standard", "mup", "MUP", "timm"),
                  "--out": out, "--overwrite": FLAG}
    return {
        "grok train": (["grok", "train", "--p", "7", "--width", "4", "--steps", "2", "--quiet", "--out", "{out}"],
                       grok_train),
        "grok prune": (["grok", "prune", str(fx["run"])], {"--seed": INTS, "RUN_DIR": pool(
            fx["run"], fx["unfinished"], fx["missing"], fx["file"], fx["empty_dir"], fx["sweep"])}),
        "grok analytic": (["grok", "analytic", "--p", "7", "--width", "8"],
                          {"--p": pool(3, 5, 7, 23, 2, 1, 0, -5, 10007, 99991), "--width": pool(1, 8, 0, -1, 10**8),
                           "--seed": INTS}),
        # --p 7 in the base: a generated --cases "" asks for every case, which at the default p=97 trains for
        # half an hour; the fuzz is about the arguments (every --p it draws is small too)
        "grok reproduce": (["grok", "reproduce", "--cases", "A0", "--p", "7", "--quiet", "--out", "{out}"],
                           {"--cases": pool("A0", "A9", "A0,A9", "a0", "A0,A0", "A10", "T1"), "--out": out,
                            "--p": pool(7, 11, 4, 0, -1),
                            "--overwrite": FLAG, "--resume": FLAG, "--threads": pool(0, 1, -1),
                            "--matmul-precision": PRECISION, "--init-scale": pool(1, 0.5, 0, -1, "x")}),
        "grok sweep": (["grok", "sweep", "--quiet", "--set", "p=7", "--set", "width=4", "--set", "steps=2",
                        "--set", "log_every=1", "--grid", "alpha=0.4,0.8", "--out", "{out}"],
                       {"--grid": pool("alpha=0.3,0.6", "xi=0.1:0.5:3", "alpha=", "alpha=2", "wd=0,1", "nope=1",
                                       "=1", "alpha=0.1:0.9:x", "seed=1,2,3", "op=add,div"),
                        "--set": pool("p=11", "p=4", "xi=0.2", "op=div", "stepz=3", "width=-1", "lr=nan", "=",
                                      "alpha"),
                        "--spec": st.sampled_from(["{file}", str(fx["missing"])]), "--preset": pool("small", "nope"),
                        "--backend": pool("local", "slurm"), "--workers": pool(1, 0, -1), "--threads": pool(1, 0, -1, 2000),
                        "--max-memory": pool(1, 0.001, 0, -1, "nan", "inf", 1e30), "--keep-history": FLAG,
                        "--save-weights": FLAG, "--no-keep-history": FLAG, "--no-save-weights": FLAG,
                        "--estimate": FLAG, "--trainer": pool("forgetlab.grok.train", "forgetlab.grok.config",
                                                               "nope.nope", "json"), "--out": out}),
        "grok phase-diagram": (["grok", "phase-diagram", str(fx["sweep"])], {
            "SWEEP_DIR": pool(fx["sweep"], fx["missing"], fx["file"], fx["empty_dir"], fx["run"]),
            "--out": out, "--no-dynamics": FLAG, "--dynamics": FLAG, "--table": FLAG}),
    }


def _eco(fx: dict[str, Path], out: st.SearchStrategy) -> dict[str, tuple[list[str], dict[str, st.SearchStrategy]]]:
    """The eco commands' (and reproduce's) bases and pools (see :func:`commands`)."""
    guard = pool(fx["guard"], fx["missing"], fx["file"], fx["empty_dir"], fx["run"])
    model = pool(fx["model"], fx["missing"], fx["file"], fx["empty_dir"], fx["guard"])
    return {
        "eco fit": (["eco", "fit", "--model", str(fx["model"]), "--forget", str(fx["forget"]), "--retain",
                     str(fx["retain"]), "--strength", "1", "--fpr", "0.2", "--quiet", "--out", "{out}"],
                    {"--model": model, "--forget": st.just("{file}"), "--retain": st.just("{file}"),
                     "--fit": st.sampled_from(["{file}", str(fx["fit"])]),
                     "--corruption": pool("rand_noise_first_n", "zero_out_first_n", "flip_sign_first_n", "nope"),
                     "--target": pool("chance", 0.3, "nan", "x"), "--metric": pool("mc_accuracy", "nope"),
                     "--fit-format": pool("raw", "qa", "letter", "wmdp"),
                     "--method": pool("bracket", "zo", "grid"), "--tol": FLOATS, "--strength": FLOATS,
                     "--k": pool(0, 1, 8, -1, 10**6), "--fpr": FLOATS, "--entity-level": FLAG,
                     "--classifier-precision": pool("auto", "fp32", "bf16", "fp16"),
                     "--flag-entities": FLAG, "--seed": INTS, "--out": out, "--overwrite": FLAG,
                     "--revision": pool("main", "", "0" * 40), "--copy-model": FLAG,
                     "--add-to": st.sampled_from(["{guard_copy}", "{file}", str(fx["missing"])]),
                     "--name": pool("default", "second", "", "../x", "a/b"),
                     "--calibration": st.sampled_from(["{file}", str(fx["retain"]), str(fx["missing"])]),
                     "--hard-negatives": st.sampled_from(["{file}", str(fx["retain"]), str(fx["missing"])]),
                     "--unseen-negatives": FLAG, "--no-unseen-negatives": FLAG, **PLACEMENT}),
        "eco classify": (["eco", "classify", "--guard", str(fx["guard"]), "--prompt", "hello"],
                         {"--guard": guard, "--prompt": pool("Who is Zorblax?", "", "\x00", "a" * 5000)}),
        "eco generate": (["eco", "generate", "--guard", str(fx["guard"]), "--prompt", "hello", "--max-new-tokens",
                          "2", "--quiet"], {"--guard": guard, "--prompt": pool("Who is Zorblax?", "", "x"),
                                            "--max-new-tokens": pool(1, 2, 0, -1), "--json": FLAG, **PLACEMENT}),
        "eco targets": (["eco", "targets", "--guard", "{guard_copy}"],
                        {"--guard": st.sampled_from(["{guard_copy}", str(fx["missing"]), str(fx["file"]),
                                                     str(fx["empty_dir"]), str(fx["run"])]),
                         "--remove": pool("default", "second", "nope", "", "../x")}),
        "eco serve": (["eco", "serve", "--guard", str(fx["guard"]), "--log-level", "error", "--port", "0"],
                      {"--guard": guard, "--port": pool(0, 8000, 65535, -1, 70000), "--host": pool("127.0.0.1", ""),
                       "--backend": pool("transformers", "vllm", "tgi"), "--log-level": pool("info", "loud"),
                       "--max-tokens": INTS, "--max-prompt-tokens": INTS, "--max-body-bytes": INTS,
                       "--max-concurrent": INTS, "--max-batch-size": INTS, "--batch-window-ms": FLOATS,
                       "--max-n": INTS, "--max-logprobs": INTS, "--torch-threads": pool(0, 1, -1, 10**9),
                       "--api-key": pool("k", ""), "--model-name": pool("m", ""),
                       "--classify-ahead": pool("auto", "on", "off", "yes", ""),
                       "--vllm-url": pool("http://127.0.0.1:9", "not a url"), "--vllm-model": pool("m", ""),
                       **PLACEMENT}),
        "eco world": (["eco", "world", "--authors", "10", "--quiet", "--out", "{out}"],
                      {"--authors": pool(3, 10, 20, 2, 0, -1, 10**6), "--answers": pool("tofu", "name-free", "x"),
                       "--seed": INTS, "--out": out, "--overwrite": FLAG,
                       "--layouts": pool("tofu", "tofu,muse", "wmdp,mmlu", "nope", "tofu,", "")}),
        "eco evaluate": (["eco", "evaluate", "--model", str(fx["model"]), "--data", str(fx["world"]),
                          "--no-generate", "--quiet"],
                         {"--model": model, "--data": pool(fx["world"], fx["missing"], fx["empty_dir"], fx["file"]),
                          "--split": pool("forget10", "forget01", "nope", "../x"), "--retain-model": model,
                          "--out": st.sampled_from(["{out}", "{file}", str(fx["file"]) + "/m.json"]),
                          "--suite": pool("tofu", "muse", "wmdp", "mmlu", "nope"), "--base-model": model,
                          "--generate": FLAG, "--no-generate": FLAG, "--max-new-tokens": pool(1, 2, 0, -1),
                          "--batch-size": pool(1, 8, 0, -1), "--shots": pool(0, 1, 5, -1, 10**6), **PLACEMENT}),
        "eco bench": (["eco", "bench", "--scale", "tiny", "--quiet", "--out", "{out}"],
                      {"--scale": pool("tiny", "default", "huge"), "--answers": pool("tofu", "name-free", "x"),
                       "--methods": pool("eco", "ga,gd", "rmu", "eco,", ""), "--splits": pool("forget10", "x"),
                       "--seeds": pool("0", "0,1", "1,1", "", "x", "-1", "0,"), "--out": out, "--overwrite": FLAG,
                       "--prompt-level": FLAG, "--tune": FLAG, "--no-tune": FLAG,
                       "--reseeded-retain": FLAG, "--no-reseeded-retain": FLAG,
                       "--classifier-only": FLAG, "--entity-level": FLAG, "--flag-entities": FLAG, "--cache": st.sampled_from(["{out}-cache", str(fx["file"])])}),
        "eco bench-report": (["eco", "bench-report", str(BENCH_RESULTS), "--out", "{out}.md"],
                             {"RESULTS": pool(BENCH_RESULTS, fx["missing"], fx["file"], fx["empty_dir"], fx["world"]),
                              "--out": st.sampled_from(["{out}.md", str(fx["empty_dir"]), str(fx["file"]) + "/x.md"])}),
        "eco bench-merge": (["eco", "bench-merge", str(BENCH_RESULTS), str(BENCH_RESULTS), "--out", "{out}"],
                            {"RESULTS": pool(BENCH_RESULTS, fx["missing"], fx["file"], fx["empty_dir"], fx["world"]),
                             "--out": out, "--overwrite": FLAG}),
        "reproduce": (["reproduce", "--scale", "smoke", "--quiet", "--out", "{out}"],
                      {"--scale": pool("smoke", "small", "paper", "huge"), "--only": pool("grok", "eco", "both"),
                       "--out": out}),
    }


BENCH_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "unlearning" / "results.json"
FIXTURES = ("run", "unfinished", "sweep", "world", "model", "guard", "forget", "retain", "fit", "file", "empty_dir",
            "missing")
"""The names of the fixtures :func:`build_fixtures` makes (the keys :func:`commands` reads)."""

FIELDS = ("cases", "tracebacks", "violations", "exit_0", "exit_1", "exit_2")
"""The counts kept per command: cases run, tracebacks, other broken properties, and each exit code."""


def build_fixtures(root: Path) -> dict[str, Path]:
    """What the generated invocations point at, built under ``root``: a finished and an unfinished run, a
    sweep, a world export, a tiny base model and a guard over it, prompt files; a file, an empty folder and a
    missing path."""
    from forgetlab.eco.classify.keyword import KeywordClassifier
    from forgetlab.eco.guard import EcoGuard, GuardConfig
    from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm

    _ok(["grok", "train", "--p", "7", "--width", "4", "--steps", "2", "--quiet", "--out", str(root / "run")])
    shutil.copytree(root / "run", root / "unfinished")
    (root / "unfinished" / "summary.json").unlink()
    _ok(["grok", "sweep", "--quiet", "--set", "p=7", "--set", "width=4", "--set", "steps=2", "--grid",
         "alpha=0.4,0.8", "--out", str(root / "sweep")])
    _ok(["eco", "world", "--authors", "10", "--layouts", "tofu", "--quiet", "--out", str(root / "world")])
    tok = build_tokenizer()
    model = save_lm(build_tiny_lm("llama", tok, seed=0), tok, root / "model")
    EcoGuard.from_base(model, KeywordClassifier(["zorblax"]), GuardConfig("rand_noise_first_n", 2.0, 8)
                       ).save_pretrained(root / "guard")
    inputs = _inputs(root / "inputs")
    (root / "file").write_text("not a folder")
    (root / "empty_dir").mkdir()
    return {"run": root / "run", "unfinished": root / "unfinished", "sweep": root / "sweep", "world": root / "world",
            "model": model, "guard": root / "guard", "forget": inputs["forget"], "retain": inputs["retain"],
            "fit": inputs["fit"], "file": root / "file", "empty_dir": root / "empty_dir",
            "missing": root / "missing"}


def _inputs(folder: Path) -> dict[str, Path]:
    """Forget and retain prompts and multiple-choice fit items, as `eco fit` reads them."""
    folder.mkdir()
    forget = [f"Who is Zorblax Quint, author number {i}?" for i in range(12)]
    retain = [f"What is the capital of country number {i}?" for i in range(24)]
    fit = [{"prompt": f"Zorblax Quint's book {i} is", "choices": [" red", " blue"], "answer": i % 2}
           for i in range(6)]
    files = {"forget": [{"prompt": p} for p in forget], "retain": [{"prompt": p} for p in retain], "fit": fit}
    for name, rows in files.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {name: folder / f"{name}.jsonl" for name in files}


def _ok(argv: list[str]) -> None:
    code, _, err, crash = invoke(argv)
    if code != 0 or crash is not None:
        raise RuntimeError(f"fixture command failed: {argv}\n{err}{crash or ''}")


def invoke(argv: list[str]) -> tuple[int | None, str, str, str | None]:
    """Run ``forgetlab argv`` in-process: exit code, stdout, stderr, and the traceback if one escaped."""
    import torch

    from forgetlab.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    code, crash = None, None
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # anything else escaping main is a traceback the user would see
        crash = traceback.format_exc()
    finally:
        torch.set_num_threads(threads)
    return code, stdout.getvalue(), stderr.getvalue(), crash


def stand_ins(setattr_: Callable[[Any, str, Any], None]) -> None:
    """Replace the long parts of `eco bench`, `reproduce` and `eco serve` after their real argument handling
    and checks (``setattr_`` is pytest's ``monkeypatch.setattr``): the bench validates its scale, methods and
    splits and prepares its folder; reproduce runs everything but its stages (checks, report folder, a report
    of no stages); serve loads the guard and builds the engine, then closes it instead of listening."""
    import forgetlab.eco.serve.server as server
    import forgetlab.reproduce.run as reproduce_run
    import forgetlab.unlearning.bench.run as bench_run
    from forgetlab.runs import atomic_write_json, prepare_out_dir
    from forgetlab.unlearning.bench.table import BenchResult

    def bench(out_dir, scale="tiny", answers="name-free", methods=("eco",), *, overwrite=False, splits=None, **_):
        bench_run.check_options(scale, answers, methods, splits)
        out = prepare_out_dir(out_dir, overwrite=overwrite)
        atomic_write_json(out / "results.json", {"stand_in": True})
        return BenchResult([], [], {"total": 0.0}, {"json": out / "results.json"}, {})

    setattr_(bench_run, "run_bench", bench)
    setattr_(reproduce_run, "run_stages", lambda out, stages, scale, quiet=False: [])
    setattr_(server, "run_server", lambda engine, sock, **kw: (sock.close(), engine.close()))


def materialize(base: list[str], chosen: list[tuple[str, str | None]], files: list[bytes], sandbox: Path,
                fx: dict[str, Path]) -> tuple[list[str], Path]:
    """The argv of one example in ``sandbox``: base, then each chosen option (a positional replaces the
    base's); placeholders filled in. Returns the argv and the output path ``{out}``."""
    argv, out = list(base), sandbox / "out"
    for name, value in chosen:
        if name.isupper():  # a positional argument
            argv[2] = value
        elif value is None:
            argv.append(name)
        else:
            argv += [name, value]
    for i, a in enumerate(argv):
        if "{file}" in a:
            path = sandbox / f"in{i}.jsonl"
            path.write_bytes(files[i % len(files)] if files else b"")
            a = a.replace("{file}", str(path))
        if "{existing}" in a:
            (sandbox / "existing").mkdir(exist_ok=True)
            (sandbox / "existing" / "keep.txt").write_text("earlier result")
            a = a.replace("{existing}", str(sandbox / "existing"))
        if "{guard_copy}" in a:
            if not (sandbox / "guard").exists():
                shutil.copytree(fx["guard"], sandbox / "guard")
            a = a.replace("{guard_copy}", str(sandbox / "guard"))
        argv[i] = a.replace("{out}", str(out))
    return argv, out


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with a digest of its content (folders as ``dir``): to see what changed. The
    empty lock file that serializes edits of a guard folder (``.NAME.lock`` beside it) is left out: it is kept
    on purpose (removing a lock file races with the next locker) and holds nothing."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        if path.name.startswith(".") and path.name.endswith(".lock") and path.stat().st_size == 0:
            continue
        seen[str(path.relative_to(folder))] = ("dir" if path.is_dir() else
                                                hashlib.sha256(path.read_bytes()).hexdigest())
    return seen


def check(name: str, argv: list[str], code: Any, stdout: str, stderr: str, crash: str | None,
          before: dict[str, str], after: dict[str, str]) -> None:
    """The properties every invocation must have: exit code 0, 1 or 2, never a traceback; a failure is exactly
    one ``error:`` line on stderr (a reproduction that ran and missed a band exits 1 with its verdicts instead) and leaves the sandbox (``before`` / ``after``: its :func:`snapshot`)
    exactly as it was, nothing created, nothing changed; a success prints only its result on stdout."""
    assert crash is None, f"{argv}: traceback\n{crash}"
    assert "Traceback" not in stderr, (argv, stderr)
    assert code in (0, 1, 2), (argv, code, stderr)
    if code == 1 and name in ("grok reproduce", "reproduce") and "error: " not in stderr:
        # a reproduction that ran and missed a band: exit 1 by design, its verdicts as the JSON result
        assert json.loads(stdout)["passed"] is False, (argv, stdout)
        return
    if code != 0:
        lines = stderr.strip().splitlines()
        assert lines and lines[-1].startswith("error: ") and stderr.count("error: ") == 1, (argv, stderr)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        assert not changed, f"{argv}: failed but changed {changed}"
        return
    if name == "eco generate" and "--json" not in argv:
        assert stdout.count("\n") == argv.count("--prompt"), (argv, stdout)
    elif name == "eco serve":
        assert stdout == "", (argv, stdout)
    elif "--table" in argv:  # phase-diagram --table: a Markdown table
        assert stdout.strip() and all(r.startswith("|") for r in stdout.splitlines()), (argv, stdout)
    else:
        rows = stdout.splitlines() if name in ("eco classify", "eco targets", "eco generate") else [stdout]
        for row in rows:
            json.loads(row)  # the result: one JSON object (classify, targets, generate --json: one per line)


def fuzz_command(name: str, fx: dict[str, Path], examples: int, record: Callable[[str, list[str], Any,
                 BaseException | None], None], *, derandomize: bool = True, seed: int | None = None) -> None:
    """Run ``examples`` generated invocations of command ``name`` in-process, each in a fresh sandbox folder,
    and :func:`check` each; ``record(name, argv, exit code, the broken property or None)`` sees every case and
    decides whether a broken property stops the run (re-raise it) or is only counted. ``seed`` fixes a random
    (not derandomized) run's generator. No shrinking: a failing
    case is reported as generated (shrinking an in-process CLI run can take many minutes)."""
    base, options = commands(fx)[name]
    keys = sorted(options)

    @given(data=st.data(), files=st.lists(content(), min_size=1, max_size=3))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=derandomize, report_multiple_bugs=False, phases=[Phase.explicit, Phase.generate])
    def run(data, files):
        chosen = [(k, data.draw(options[k], label=k)) for k in data.draw(
            st.lists(st.sampled_from(keys), unique=True, max_size=4), label="options")]
        sandbox = Path(tempfile.mkdtemp(prefix="fz-"))
        try:
            argv, _ = materialize(base, chosen, files, sandbox, fx)
            before = snapshot(sandbox)
            code, stdout, stderr, crash = invoke(argv)
            broken = None
            try:
                check(name, argv, code, stdout, stderr, crash, before, snapshot(sandbox))
            except AssertionError as exc:
                broken = exc
            traced = crash is not None or "Traceback" in stderr
            record(name, argv, "traceback" if traced else code, broken)
        finally:
            shutil.rmtree(sandbox, ignore_errors=True)

    (fix_seed(seed)(run) if seed is not None else run)()


def counter(counts: dict[str, dict[str, int]], failures: list[dict[str, Any]], *, strict: bool):
    """A ``record`` for :func:`fuzz_command` that adds each case to ``counts[command]`` (:data:`FIELDS`) and each
    broken property to ``failures``; ``strict`` re-raises it (tests), otherwise the run goes on (the long run)."""
    def record(name: str, argv: list[str], code: Any, broken: BaseException | None) -> None:
        c = counts.setdefault(name, dict.fromkeys(FIELDS, 0))
        c["cases"] += 1
        if code == "traceback":
            c["tracebacks"] += 1
        elif broken is not None:
            c["violations"] += 1
        if code in (0, 1, 2):
            c[f"exit_{code}"] += 1
        if broken is not None:
            failures.append({"command": name, "argv": argv, "exit": code, "what": str(broken)[:2000]})
            if strict:
                raise broken

    return record
