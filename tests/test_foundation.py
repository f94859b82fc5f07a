"""The shared foundation: atomic writes, output folders, one-line CLI errors."""

import json
import os
import subprocess
import sys

import pytest
import torch

from forgetlab.errors import BadInput, ForgetlabError, check_choice, check_range
from forgetlab.runs import (
    atomic_write_json,
    load_tensors,
    prepare_out_dir,
    read_json,
    save_tensors,
)


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})
    assert read_json(target) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_prepare_out_dir_refuses_non_empty_unless_overwrite(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInput, match="--overwrite"):
        prepare_out_dir(tmp_path)
    assert prepare_out_dir(tmp_path, overwrite=True) == tmp_path


def test_corrupted_safetensors_is_a_clear_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_tensors(path, {"w": torch.ones(3)})
    assert torch.equal(load_tensors(path)["w"], torch.ones(3))
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ForgetlabError, match="not a valid safetensors"):
        load_tensors(path)


def test_checks_name_field_and_allowed_values():
    with pytest.raises(BadInput, match=r"alpha: got 1.5; allowed: a number in \[0, 1\)"):
        check_range("alpha", 1.5, 0, 1)
    with pytest.raises(BadInput, match="one of add, mul"):
        check_choice("op", "pow", ["mul", "add"])


def test_cli_usage_error_is_one_line_exit_2():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "forgetlab.cli", "no-such-command"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    json.dumps(proc.stderr)


def test_rename_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(target, {"x": 2})
    monkeypatch.undo()
    assert read_json(target) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_json_artifacts_are_strict_json(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"fpr": float("nan"), "x": [float("inf"), 1.5], "t": torch.tensor(2.0)})

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse)
    assert data == {"fpr": None, "x": [None, 1.5], "t": 2.0}


def test_check_range_refuses_non_numbers():
    with pytest.raises(BadInput, match=r"alpha: got '0\.5'; allowed: a number"):
        check_range("alpha", "0.5", 0, 1)
    with pytest.raises(BadInput, match="a number"):
        check_range("xi", True, 0, 1)


def test_every_data_file_of_the_package_is_declared_package_data():
    """A tracked non-Python file under forgetlab/ (the sweep presets) ships in a wheel only if a package-data glob
    in pyproject.toml names it; the glob once pointed at a folder that had moved, so a non-editable install had no
    presets. Globs are expanded as setuptools does (``*`` stops at ``/``), over the files git tracks."""
    import subprocess
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["forgetlab"]
    tracked = subprocess.run(["git", "ls-files", "forgetlab"], cwd=root, capture_output=True, text=True, check=True)
    data = {Path(f).relative_to("forgetlab").as_posix() for f in tracked.stdout.split() if not f.endswith(".py")}
    shipped = {p.relative_to(root / "forgetlab").as_posix() for g in globs for p in (root / "forgetlab").glob(g)}
    assert data, "the package has data files (the sweep presets)"
    assert sorted(data - shipped) == []
