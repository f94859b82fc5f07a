"""Files and folders the project writes follow the umask, as `open` and `mkdir` do: a results folder written
under umask 002 is group-readable and -writable, under 077 private. Covers the atomic file writer, atomic
folders (guard folders) and a `grok train` run folder (a sweep store: tests/grok/sweep/test_sweep_store.py)."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_runner import run_cli

from forgetlab.runs import atomic_write_json, write_folder_atomically


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """``{relative path: permission bits}`` of everything under ``root`` (root included)."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        out[p.relative_to(root).as_posix()] = stat.S_IMODE(p.stat().st_mode)
    return out


def assert_modes(root: Path, mask: int) -> None:
    for rel, mode in modes(root).items():
        want = (0o777 if (root / rel).is_dir() else 0o666) & ~mask
        assert mode == want, f"{rel}: {oct(mode)}, the umask {oct(mask)} gives {oct(want)}"


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_atomic_files_and_folders_follow_the_umask(tmp_path, mask):
    with umask(mask):
        atomic_write_json(tmp_path / "a" / "x.json", {"a": 1})

        def write(d: Path) -> None:
            atomic_write_json(d / "inner.json", {})
            (d / "sub").mkdir()

        write_folder_atomically(tmp_path / "a" / "folder", write)
    assert_modes(tmp_path / "a", mask)


def test_a_guard_folder_follows_the_umask(tmp_path):
    from forgetlab.eco.classify.keyword import KeywordClassifier
    from forgetlab.eco.guard import EcoGuard, GuardConfig
    from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm

    tok = build_tokenizer()
    base = save_lm(build_tiny_lm("llama", tok, seed=0), tok, tmp_path / "base")
    guard = EcoGuard.from_base(base, KeywordClassifier(["x"]), GuardConfig("rand_noise_first_n", 1.0, 8))
    with umask(0o002):
        write_folder_atomically(tmp_path / "out" / "guard", lambda d: guard.save_pretrained(d, overwrite=True))
    assert_modes(tmp_path / "out", 0o002)


def test_a_grok_run_folder_follows_the_umask(tmp_path, capsys):
    with umask(0o027):
        code, _, err = run_cli(["grok", "train", "--p", "7", "--width", "8", "--steps", "3", "--quiet", "--out",
                                str(tmp_path / "run")], capsys)
    assert code == 0, err
    assert_modes(tmp_path / "run", 0o027)
