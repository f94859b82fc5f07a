"""Defects the fuzzers found (tests/test_fuzz_cli.py, tests/eco/serve/test_serve_schema_fuzz.py), one test each,
so that each stays fixed even where a fuzz profile would not draw the same case again."""

from __future__ import annotations

import pytest
from cli_runner import run_cli


@pytest.mark.parametrize("argv", [
    ["reproduce", "--scale", "huge", "--quiet"],
    ["grok", "reproduce", "--cases", "A10", "--quiet"],
    ["eco", "world", "--authors", "-1", "--quiet"],
])
def test_a_refused_command_leaves_no_parent_folder_it_created(tmp_path, capsys, argv):
    """`--out new/deeper/out` of a refused command: no `new/` left behind (the claim created the parents)."""
    code, out, err = run_cli([*argv, "--out", str(tmp_path / "new" / "deeper" / "out")], capsys)
    assert code == 2 and out == "" and err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


def test_a_refused_command_keeps_parent_folders_that_existed_or_were_filled(tmp_path, capsys):
    (tmp_path / "kept").mkdir()
    code, _, _ = run_cli(["reproduce", "--scale", "huge", "--out", str(tmp_path / "kept" / "out")], capsys)
    assert code == 2 and [p.name for p in tmp_path.iterdir()] == ["kept"] and not any((tmp_path / "kept").iterdir())


@pytest.mark.parametrize("name", ["../..", ".relative", "", "a..b", "x y"])
def test_a_sweep_trainer_that_is_not_a_module_name_is_one_line(tmp_path, capsys, name):
    code, out, err = run_cli(["grok", "sweep", "--quiet", "--set", "p=7", "--set", "width=4", "--set", "steps=2",
                              "--trainer", name, "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: trainer: ")
    assert not (tmp_path / "s").exists()


def test_lm_eval_usage_errors_and_bad_tasks_are_one_line(capsys, monkeypatch):
    """`eco lm-eval` passes its arguments to lm-eval: its usage errors (usage text + error line) and its
    ValueError for an unknown task (a traceback) are one line, exit 2."""
    pytest.importorskip("lm_eval")
    code, out, err = run_cli(["eco", "lm-eval", "--bogus"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: lm-eval: ")
    import lm_eval.__main__

    def unknown_task():
        raise ValueError("Tasks not found: nope")  # what lm-eval raises after indexing its tasks (~40 s)

    monkeypatch.setattr(lm_eval.__main__, "cli_evaluate", unknown_task)
    code, out, err = run_cli(["eco", "lm-eval", "--model", "forgetlab-eco", "--tasks", "nope"], capsys)
    assert (code, out, err) == (2, "", "error: lm-eval: Tasks not found: nope\n")


@pytest.mark.parametrize("argv", [
    ["grok", "analytic", "--p", "7", "--width", "8", "--seed", str(2**63)],
    ["grok", "reproduce", "--cases", "A0", "--quiet", "--threads", str(10**21), "--out", "OUT"],
])
def test_seeds_and_threads_beyond_64_bits_are_one_line(tmp_path, capsys, argv):
    """torch overflowed ('Overflow when unpacking long long') on a seed or thread count past 64 bits."""
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_grok_reproduce_refuses_a_p_too_small_for_a_case_before_training_any(tmp_path, capsys):
    """All cases at p=7: A8's batch of 64 exceeds the training set; refused before A1-A7 train (was: minutes of
    training, then the error, with their folders left behind)."""
    code, out, err = run_cli(["grok", "reproduce", "--p", "7", "--quiet",
                              "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and out == "" and err.startswith("error: batch_size")
    assert list(tmp_path.iterdir()) == []


def test_a_cuda_or_mps_device_this_machine_lacks_is_bad_input_not_a_traceback():
    """`eco generate --device cuda` on a CPU-only torch: torch's AssertionError came through as a traceback."""
    import torch

    from forgetlab.eco.placement import Placement
    from forgetlab.errors import BadInput

    beyond = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"
    with pytest.raises(BadInput, match=r"device: got 'cuda:\d+'; allowed: cpu or auto here"):
        Placement(device=beyond).torch_device()
    if not torch.backends.mps.is_available():
        with pytest.raises(BadInput, match="no MPS device"):
            Placement(device="mps").torch_device()
    assert Placement(device="cpu").torch_device() == "cpu"


@pytest.mark.parametrize("seed", [-1, 2**63, True])
def test_a_classifier_seed_numpy_or_torch_refuses_is_bad_input(seed):
    """`eco fit --seed -1` trained nothing and ended in numpy's ValueError traceback."""
    from forgetlab.eco.classify.config import ClassifierConfig
    from forgetlab.errors import BadInput

    with pytest.raises(BadInput, match=r"^seed: got"):
        ClassifierConfig(seed=seed).validate()


def test_grok_analytic_refuses_a_p_whose_evaluation_does_not_fit_in_memory(capsys):
    """`grok analytic --p 99991`: every p^2 pair is evaluated at once; it grew to 16 GB before anything stopped
    it. Now refused with the estimate before allocating."""
    code, out, err = run_cli(["grok", "analytic", "--p", "10007", "--width", "8"], capsys)
    assert code == 2 and out == "" and err.startswith("error: p/width") and "GiB" in err


@pytest.mark.parametrize("p", ["-1", "1", "2"])
def test_grok_reproduce_of_the_analytic_case_checks_p(tmp_path, capsys, p):
    """`grok reproduce --cases A0 --p -1`: A0 trains nothing, so no config checked p (a torch RuntimeError)."""
    code, out, err = run_cli(["grok", "reproduce", "--cases", "A0", "--p", p, "--quiet",
                              "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and out == "" and err.startswith("error: p:") and list(tmp_path.iterdir()) == []


def test_grok_reproduce_refuses_cases_that_cannot_fit_in_memory_before_anything(tmp_path, capsys):
    """`grok reproduce --cases T1 --p 999999999999999999999`: an integer >= 3, so it started allocating and the
    long fuzz run was killed by the kernel at 24 GB. Now refused with the estimate, nothing written."""
    code, out, err = run_cli(["grok", "reproduce", "--cases", "T1", "--p", "999999999999999999999", "--quiet",
                              "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and out == "" and err.startswith("error: p/width") and list(tmp_path.iterdir()) == []
