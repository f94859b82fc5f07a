"""Each defect of issue 17 with its fix disabled, one at a time: the tests that claim to guard it must then fail.

    nice -n 10 .venv/bin/python benchmarks/fault_mutations.py --out docs/benchmarks/robustness/mutations.json
    .venv/bin/python benchmarks/fault_mutations.py --table docs/benchmarks/robustness/mutations.json  # the docs' table

A test that passes whether or not its fix is in place guards nothing. :data:`MUTATIONS` lists, for every defect
of the issue's "Why" section (as the issue words it), the source file, the exact text of the fix, the text that
disables it (the code as it was, or the check removed), and the test node ids that must then fail. The script
copies the tree (without ``.git``, ``docs`` and caches) to a temporary folder, first runs every named test there
unchanged (they must all pass: a test failing without a mutation proves nothing), then for each mutation: puts
the disabled text in place, runs only its tests (``PYTHONPATH`` the copy, no bytecode written, a per-test
timeout: a test that hangs with its fix disabled counts as failing), and restores the file. A mutation whose
fix text is not found exactly once is an error (exit 2) before anything runs, never a skip: the table must
follow the code. Tests run under an address-space limit (``--memory-limit-gb``), so that a disabled memory check
fails with ``MemoryError`` instead of swapping a shared machine.

The results JSON records, per defect, whether the mutation was applied, whether every named test failed, each
test's outcome and the seconds; and the machine, load, versions and command. ``--table`` renders it as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns(".git", "docs", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache",
                                ".import_linter_cache", "*.egg-info", "out")


class Mutation(NamedTuple):
    """One defect, its fix in one file, the text that disables the fix, and the tests that must then fail."""

    defect: str  # as issue 17's "Why" section words it
    file: str
    fix: str  # exact text of the fix, found exactly once in ``file``
    disabled: str  # what replaces it
    tests: tuple[str, ...]  # node ids, every one of which must fail with the fix disabled
    timeout_s: int = 180  # per test


TF, TE = "tests/test_faults.py::", "tests/eco/test_eco_faults.py::"
TS, TH = "tests/grok/sweep/test_sweep_concurrency.py::", "tests/eco/serve/test_serve_errors.py::"
TR = "tests/test_fuzz_regressions.py::"
CLI_OS_ERRORS = ("    except OSError as exc:\n        fail(os_error_line(exc)",
                 "    except ZeroDivisionError as exc:\n        fail(os_error_line(exc)")

MUTATIONS: tuple[Mutation, ...] = (
    Mutation("SweepStore.open race: another process's manifest temp file counted as foreign",
             "forgetlab/grok/sweep/store.py",
             '    return name == MANIFEST or (m is not None and m["name"] == MANIFEST)\n',
             "    return name == MANIFEST\n",
             (TS + "test_open_ignores_another_process_manifest_in_flight",)),
    Mutation("SweepStore.open race: refused without looking for the manifest again",
             "forgetlab/grok/sweep/store.py",
             "        if foreign and not path.exists():", "        if foreign:",
             (TS + "test_open_looks_for_the_manifest_again_before_refusing",)),
    Mutation("SweepStore.open race: runs/ and claims/ created before sweep.json exists",
             "forgetlab/grok/sweep/store.py",
             "            if not path.exists():\n                store._create_manifest(spec_dict, spec_hash, n_runs, trainer)\n"
             "            for d in (store.runs_dir, store.claims_dir):\n                d.mkdir(exist_ok=True)\n",
             "            for d in (store.runs_dir, store.claims_dir):\n                d.mkdir(exist_ok=True)\n"
             "            if not path.exists():\n                store._create_manifest(spec_dict, spec_hash, n_runs, trainer)\n",
             (TS + "test_open_writes_the_manifest_before_anything_else",)),
    Mutation("clean_temp_files deletes a concurrent process's in-flight temp file", "forgetlab/runs.py",
             '        dead = not legacy and m["host"] == me and not pid_alive(int(m["pid"]))\n',
             '        dead = not legacy and m["host"] == me\n',
             (TS + "test_temp_cleanup_spares_live_writers_and_takes_dead_ones",
              TF + "test_killed_writers_temp_folders_are_cleaned_live_ones_kept")),
    Mutation("silent overwrite: two `eco fit --out SAME` both exit 0 (no claim)", "forgetlab/eco/cli.py",
             "    claim = claim_out_dir(out, overwrite=overwrite, swapped=True) if out is not None else nullcontext()\n",
             "    claim = nullcontext()\n",
             (TE + "test_fit_refuses_a_second_writer_before_any_work",)),
    Mutation("silent overwrite: two `grok train --out SAME` both exit 0 (no claim)", "forgetlab/grok/cli.py",
             "    with claim_out_dir(out, overwrite=overwrite, swapped=True) as out_dir:\n",
             '    with __import__("contextlib").nullcontext(out) as out_dir:\n',
             (TF + "test_a_second_writer_of_a_run_folder_is_refused_and_the_first_result_kept",)),
    Mutation("silent overwrite: the claim's lock not taken (every command)", "forgetlab/folders.py",
             "            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n", "            pass\n",
             (TF + "test_a_second_writer_of_a_run_folder_is_refused_and_the_first_result_kept",
              TE + "test_fit_refuses_a_second_writer_before_any_work")),
    Mutation("silent loss: a truncated run JSON counts as finished", "forgetlab/grok/sweep/run.py",
             "    n_damaged = _set_aside_damaged(store)\n", "    n_damaged = 0\n",
             (TS + "test_a_damaged_run_record_is_reported_set_aside_and_retrained",)),
    Mutation("hang: another host's claims expire after 24 h, not by lease", "forgetlab/grok/sweep/claims.py",
             '            return age > float(owner.get("lease_s") or self.lease_s)\n',
             "            return age > 24 * 3600.0\n",
             (TS + "test_a_claim_from_another_host_expires_by_lease_and_a_heartbeat_keeps_ours",
              TS + "test_a_sweep_does_not_wait_a_day_for_a_dead_remote_claim"), timeout_s=90),
    Mutation("hang (lease): a live claim is not renewed by its heartbeat", "forgetlab/grok/sweep/claims.py",
             "                self.renew(ids)\n", "                pass\n",
             (TS + "test_a_claim_from_another_host_expires_by_lease_and_a_heartbeat_keeps_ours",)),
    Mutation("integrity: guard.json not covered by a checksum (strength 0 by hand still loads)",
             "forgetlab/eco/guard_folder.py",
             "    if hashlib.sha256(data).hexdigest() != want:\n", "    if False:\n",
             (TE + "test_guard_json_is_covered_by_its_own_checksum",)),
    Mutation("integrity: a model.path of ../.. accepted (the referenced model's files not verified)",
             "forgetlab/eco/guard_folder.py",
             "        if verify:\n            verify_checksums(source.folder",
             "        if False:\n            verify_checksums(source.folder",
             (TE + "test_a_resealed_but_wrong_record_is_still_refused_on_one_line[model-path-dotdot]",
              TE + "test_a_resealed_but_wrong_record_is_still_refused_on_one_line[model-path-root]")),
    Mutation("integrity: a model reference listing no config.json accepted", "forgetlab/eco/guard_folder.py",
             '        if not isinstance(files, dict) or "config.json" not in files:\n',
             "        if not isinstance(files, dict):\n",
             (TE + "test_a_resealed_but_wrong_record_is_still_refused_on_one_line[model-files-empty]",)),
    Mutation("integrity: a copied model's path of ../.. leads out of the guard folder",
             "forgetlab/eco/guard_folder.py",
             '        return [confined(path, rel if rel is not None else "model", f"guard {path}", RECORD)]\n',
             '        return [path / (rel if rel is not None else "model")]\n',
             (TE + "test_a_copied_model_must_stay_inside_the_guard_folder",)),
    Mutation("traceback: invalid UTF-8 in a JSON file read by read_json", "forgetlab/runs.py",
             "    except UnicodeDecodeError as exc:\n        raise ForgetlabError(f\"{path}: not UTF-8 text (byte "
             "{exc.start})\") from None\n    return loads_json(",
             "    except ZeroDivisionError as exc:\n        raise ForgetlabError(f\"{path}: not UTF-8 text (byte "
             "{exc.start})\") from None\n    return loads_json(",
             (TF + "test_json_and_jsonl_readers_refuse_bad_bytes_and_deep_nesting",
              TF + "test_prune_with_a_config_that_is_not_utf8")),
    Mutation("traceback: invalid UTF-8 in a sweep spec", "forgetlab/grok/sweep/spec.py",
             "    except UnicodeDecodeError as exc:\n        raise BadInput(\"spec\"",
             "    except ZeroDivisionError as exc:\n        raise BadInput(\"spec\"",
             (TF + "test_bad_sweep_specs_are_one_line[not-utf8]",)),
    Mutation("traceback: --max-memory or max_memory_gb of nan or inf", "forgetlab/grok/sweep/run.py",
             "    if gb is not None and not (math.isfinite(gb) and gb > 0):\n", "    if False:\n",
             (TF + "test_sweep_memory_limit_must_be_finite[nan]", TF + "test_sweep_memory_limit_must_be_finite[inf]",
              TF + "test_bad_sweep_specs_are_one_line[nan-memory]")),
    Mutation("traceback: a full disk in grok train", "forgetlab/cli.py", *CLI_OS_ERRORS,
             (TF + "test_a_full_disk_is_one_line_exit_1_and_leaves_nothing",)),
    Mutation("half-written: a full disk in grok train leaves its temp folder", "forgetlab/runs.py",
             "    except BaseException:\n        shutil.rmtree(tmp, ignore_errors=True)\n        raise\n",
             "    except ZeroDivisionError:\n        shutil.rmtree(tmp, ignore_errors=True)\n        raise\n",
             (TF + "test_a_full_disk_is_one_line_exit_1_and_leaves_nothing",)),
    Mutation("traceback: a full disk in grok sweep", "forgetlab/cli.py", *CLI_OS_ERRORS,
             (TF + "test_a_full_disk_during_a_sweep_is_one_line_exit_1",)),
    Mutation("traceback: a full disk in eco fit", "forgetlab/cli.py", *CLI_OS_ERRORS,
             (TE + "test_fit_on_a_full_disk_is_exit_1_and_leaves_no_folder",)),
    Mutation("traceback: grok train with a large p or width (no memory estimate)", "forgetlab/grok/cli.py",
             "    _check_memory(cfg)\n    set_torch_threads(threads)\n", "    set_torch_threads(threads)\n",
             (TF + "test_a_run_too_large_for_memory_is_refused_before_anything_is_created",), timeout_s=120),
    Mutation("traceback: guard.json config fields of the wrong type", "forgetlab/eco/guard_folder.py",
             "        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):\n",
             "        if False:\n",
             (TE + "test_a_resealed_but_wrong_record_is_still_refused_on_one_line[strength-string]",
              TE + "test_a_resealed_but_wrong_record_is_still_refused_on_one_line[k-float]",
              TE + "test_a_resealed_but_wrong_record_is_still_refused_on_one_line[flag-entities-string]")),
    Mutation("traceback: guard.json top-level fields of the wrong type", "forgetlab/eco/guard_folder.py",
             "        if not isinstance(meta.get(key), kind):\n", "        if False:\n",
             (TE + "test_a_resealed_but_wrong_record_is_still_refused_on_one_line[classifier-type-int]",
              TE + "test_a_resealed_but_wrong_record_is_still_refused_on_one_line[files-list]")),
    Mutation("traceback: a base model with a pickle .bin (UnpicklingError)", "forgetlab/eco/base_model.py",
             '        if not isinstance(exc, LOAD_ERRORS) and type(exc).__name__ != "UnpicklingError":\n',
             "        if not isinstance(exc, LOAD_ERRORS):\n",
             (TE + "test_a_pickle_bin_base_model_is_one_line",)),
    Mutation("traceback: eco fit --out on a read-only file system (after training): no claim first",
             "forgetlab/eco/cli.py",
             "    claim = claim_out_dir(out, overwrite=overwrite, swapped=True) if out is not None else nullcontext()\n",
             "    claim = nullcontext()\n",
             (TE + "test_fit_refuses_an_unwritable_out_before_any_work",)),
    Mutation("traceback: eco fit --out on a read-only file system: the OS error not one line", "forgetlab/cli.py",
             *CLI_OS_ERRORS, (TE + "test_fit_refuses_an_unwritable_out_before_any_work",)),
    Mutation("traceback: a JSONL line nested very deep", "forgetlab/runs.py",
             "    except RecursionError:\n        raise ForgetlabError(f\"{where}: not valid JSON (nested too deeply)\")",
             "    except ZeroDivisionError:\n        raise ForgetlabError(f\"{where}: not valid JSON (nested too deeply)\")",
             (TE + "test_a_deeply_nested_jsonl_line_is_one_line",
              TF + "test_json_and_jsonl_readers_refuse_bad_bytes_and_deep_nesting")),
    Mutation("wrong error: eco fit --out EXISTING_EMPTY_DIR trains, then is refused", "forgetlab/runs.py",
             "            if not is_empty_folder(final) and not replace(final):\n",
             "            if not replace(final):\n",
             (TE + "test_fit_into_an_existing_empty_folder_writes_the_guard",
              TF + "test_an_existing_empty_folder_is_replaced_by_a_folder_write")),
    Mutation("wrong error: output folders created before some checks (empty folders left)", "forgetlab/folders.py",
             "    created = None if path.exists() else _missing_parents(path)\n", "    created = None\n",
             (TR + "test_a_refused_command_leaves_no_parent_folder_it_created[argv0]",
              TF + "test_a_second_writer_of_a_run_folder_is_refused_and_the_first_result_kept",
              TF + "test_a_full_disk_is_one_line_exit_1_and_leaves_nothing",
              TE + "test_a_pickle_bin_base_model_is_one_line",
              TE + "test_fit_on_a_full_disk_is_exit_1_and_leaves_no_folder")),
    Mutation("wrong error: grok prune accepts an unfinished run", "forgetlab/grok/cli.py",
             '    if not (run_dir / "summary.json").is_file():\n', "    if False:\n",
             (TF + "test_prune_refuses_an_unfinished_run",)),
    Mutation("wrong error: an empty sweep spec silently runs the default configuration",
             "forgetlab/grok/sweep/spec.py",
             "    if not (fixed or grid or zipped):\n", "    if False:\n",
             (TF + "test_bad_sweep_specs_are_one_line[only-a-comment]",
              TF + "test_bad_sweep_specs_are_one_line[only-sweep-settings]"), timeout_s=240),
    Mutation("wrong error: hidden temp folders from killed fits never cleaned", "forgetlab/runs.py",
             "    clean_stale_temps(final.parent, final.name)\n", "",
             (TF + "test_killed_writers_temp_folders_are_cleaned_live_ones_kept",)),
    Mutation("server: a 900 KB prompt tokenized before the length check", "forgetlab/eco/serve/http.py",
             '    _check_chars(engine, [p for p in prompt if isinstance(p, str)], "prompt")\n', "",
             (TH + "test_a_huge_prompt_is_refused_by_its_length_without_blocking_other_clients",)),
    Mutation("server: prompts tokenized on the event loop", "forgetlab/eco/serve/http.py",
             "    prompts = await engine.off_loop(_chat_prompt if chat else _completion_prompts, engine, body)\n",
             "    prompts = (_chat_prompt if chat else _completion_prompts)(engine, body)\n",
             (TH + "test_prompts_are_tokenized_off_the_event_loop",)),
    Mutation("server: a deeply nested JSON body returns 500 instead of 400", "forgetlab/eco/serve/http.py",
             "    except RecursionError:\n        raise ApiError(400, \"request body is nested too deeply\"",
             "    except ZeroDivisionError:\n        raise ApiError(400, \"request body is nested too deeply\"",
             (TH + "test_deeply_nested_or_undecodable_bodies_are_400",)),
)


def copy_tree(dst: Path) -> Path:
    """The repository's working tree (no .git, docs or caches) copied to ``dst``."""
    shutil.copytree(ROOT, dst, ignore=IGNORE)
    return dst


def check_patterns(tree: Path, mutations: list[Mutation]) -> None:
    """Every mutation's fix text must be in its file exactly once; otherwise exit 2 naming each that is not."""
    bad = []
    for i, m in enumerate(mutations, 1):
        path = tree / m.file
        n = path.read_text(encoding="utf-8").count(m.fix) if path.is_file() else -1
        if n != 1:
            bad.append(f"#{i} {m.defect}: the fix text is found {n if n >= 0 else 'no file'} times in {m.file} "
                       "(expected exactly once)")
    if bad:
        print("error: " + "; ".join(bad), file=sys.stderr)
        sys.exit(2)


def _limit_memory(gb: float):
    def apply() -> None:
        limit = int(gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _outcomes(junit: Path, tests: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """``{node id: passed | failed | skipped | not run}`` for ``tests`` from a pytest JUnit XML report, and
    ``{node id: the first line of its failure}`` for those that failed (what made them fail)."""
    seen: dict[str, str] = {}
    why: dict[str, str] = {}
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
            bad = [c for c in case if c.tag in ("failure", "error")]
            seen[node] = "failed" if bad else "skipped" if case.find("skipped") is not None else "passed"
            if bad:
                why[node] = (bad[0].get("message") or "").strip().splitlines()[0][:300] if bad[0].get("message") \
                    else bad[0].tag
    return {t: seen.get(t, "not run") for t in tests}, {t: why[t] for t in tests if t in why}


def run_tests(tree: Path, tests: tuple[str, ...], timeout_s: int, memory_gb: float) -> dict[str, Any]:
    """Run ``tests`` in ``tree`` (its own code on PYTHONPATH): each test's outcome, the exit code, the seconds."""
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg", TOKENIZERS_PARALLELISM="false")
    junit = tree / ".junit.xml"
    junit.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--timeout={timeout_s}",
            f"--junitxml={junit}", *tests]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True,
                             timeout=timeout_s * len(tests) + 300, preexec_fn=_limit_memory(memory_gb))
        rc, tail = res.returncode, (res.stdout + res.stderr).strip().splitlines()[-1:]
    except subprocess.TimeoutExpired:
        rc, tail = -9, ["killed: the whole run outlasted its timeout"]
    outcomes, why = _outcomes(junit, tests)
    return {"outcomes": outcomes, "failures": why, "exit_code": rc, "last_line": " ".join(tail),
            "seconds": round(time.perf_counter() - t0, 1)}


def mutate_and_test(tree: Path, m: Mutation, memory_gb: float) -> dict[str, Any]:
    """Disable ``m``'s fix in ``tree``, run its tests, restore the file: did every named test fail?"""
    path = tree / m.file
    original = path.read_text(encoding="utf-8")
    applied = original.count(m.fix) == 1
    try:
        if applied:
            path.write_text(original.replace(m.fix, m.disabled), encoding="utf-8")
        run = run_tests(tree, m.tests, m.timeout_s, memory_gb)
    finally:
        path.write_text(original, encoding="utf-8")
    failed = applied and run["exit_code"] != 0 and all(o in ("failed", "not run") for o in run["outcomes"].values())
    return {"number": MUTATIONS.index(m) + 1, **m._asdict(), "tests": list(m.tests), "applied": applied,
            "tests_failed": failed, **run}


def run(mutations: list[Mutation], memory_gb: float, save) -> dict[str, Any]:
    """The baseline (every named test on the unchanged copy), then each mutation in turn; ``save`` after each."""
    with tempfile.TemporaryDirectory(prefix="fault-mutations-") as tmp:
        tree = copy_tree(Path(tmp) / "tree")
        check_patterns(tree, mutations)
        every = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
        print(f"baseline: {len(every)} tests on the unchanged tree", file=sys.stderr)
        base = run_tests(tree, every, max(m.timeout_s for m in mutations), memory_gb)
        res: dict[str, Any] = {"baseline": base, "baseline_passed": all(o == "passed" for o in
                                                                          base["outcomes"].values()),
                               "defects": []}
        print(f"baseline: {base['last_line']} ({base['seconds']} s)", file=sys.stderr)
        save(res | {"partial": True})
        for m in mutations:
            one = mutate_and_test(tree, m, memory_gb)
            res["defects"].append(one)
            print(f"#{one['number']} {'caught' if one['tests_failed'] else 'NOT CAUGHT'}: {m.defect} ({one['seconds']} s; "
                  f"{one['last_line']})", file=sys.stderr)
            save(res | {"partial": True})
    return res | {"partial": False}


def _code(text: str, width: int = 70) -> str:
    one = " ⏎ ".join(line.strip() for line in text.strip("\n").splitlines()) or "(removed)"
    one = one if len(one) <= width else one[:width - 1] + "…"
    return "`" + one.replace("|", "\\|").replace("`", "'") + "`"


def _short(node: str) -> str:
    return node.split("::", 1)[1]


def table(path: Path) -> str:
    """The Markdown of a results file, as in docs/benchmarks/robustness.md."""
    res = json.loads(path.read_text(encoding="utf-8"))
    m, v = res["machine"], res["versions"]
    base = res["baseline"]
    lines = [f"- `{res['command']}`: finished {res['finished']}, {res['seconds'] / 60:.1f} min on {m['cpu']}, "
             f"{m['cores']} cores, load average {m['load_average'][0]:.1f} at the start (a shared machine); "
             f"torch {v.get('torch')}, Python {m['python']}" + ("; **partial**" if res.get("partial") else ""),
             f"- Baseline, every named test on the unchanged tree: "
             f"{sum(o == 'passed' for o in base['outcomes'].values())} of {len(base['outcomes'])} pass "
             f"({base['seconds']:.0f} s)", "",
             "| # | defect (issue 17) | file | fix → disabled | tests that must fail | applied | all failed | s |",
             "|---|---|---|---|---|---|---|---|"]
    for d in res["defects"]:
        tests = "<br>".join(f"`{_short(t)}` ({d['outcomes'][t]})" for t in d["tests"])
        lines.append(f"| {d['number']} | {d['defect']} | `{d['file']}` | {_code(d['fix'])} → {_code(d['disabled'])} | "
                     f"{tests} | {'yes' if d['applied'] else '**no**'} | "
                     f"{'yes' if d['tests_failed'] else '**no**'} | {d['seconds']:.0f} |")
    missed = [d["number"] for d in res["defects"] if not d["tests_failed"]]
    lines += ["", f"{len(res['defects']) - len(missed)} of {len(res['defects'])} mutations caught by every test "
              "named for them" + (f"; not caught: {', '.join(f'#{i}' for i in missed)}." if missed else ".")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="Results JSON to write.")
    ap.add_argument("--only", help="Comma-separated 1-based numbers of the mutations to run (default: all).")
    ap.add_argument("--memory-limit-gb", type=float, default=8.0, help="Address-space limit of each test run.")
    ap.add_argument("--table", type=Path, help="Only print the Markdown of this results file.")
    args = ap.parse_args(argv)
    if args.table:
        sys.stdout.write(table(args.table))
        return 0
    if args.out is None:
        ap.error("give --out (or --table RESULTS)")
    chosen = list(MUTATIONS)
    if args.only:
        try:
            chosen = [MUTATIONS[int(i) - 1] for i in args.only.split(",")]
        except (ValueError, IndexError):
            ap.error(f"--only: numbers from 1 to {len(MUTATIONS)}, comma-separated")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fuzz import _machine, _versions

    machine, t0 = _machine(), time.perf_counter()
    command = "python benchmarks/fault_mutations.py " + " ".join(argv if argv is not None else sys.argv[1:])

    def save(res: dict[str, Any]) -> None:
        res = res | {"seconds": time.perf_counter() - t0, "machine": machine, "versions": _versions(),
                     "command": command, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(args.out)

    res = run(chosen, args.memory_limit_gb, save)
    save(res)
    caught = sum(d["tests_failed"] for d in res["defects"])
    print(json.dumps({"mutations": len(res["defects"]), "caught": caught, "baseline_passed": res["baseline_passed"]}))
    return 0 if caught == len(res["defects"]) and res["baseline_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
