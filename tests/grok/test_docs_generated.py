"""The generated tables of docs/benchmarks/phases.md and robustness.md equal their commands' output on the committed results
(benchmarks/regen_docs.py: a table in the docs is never typed by hand)."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "benchmarks" / "phases.md", ROOT / "docs" / "benchmarks" / "robustness.md"]


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_in_process(command: str, capsys, monkeypatch) -> str:
    """A block's command run in this process (``forgetlab ...`` through the CLI, ``python FILE ...``)."""
    words = shlex.split(command)
    monkeypatch.chdir(ROOT)
    if words[0] == "forgetlab":
        from forgetlab.cli import main

        with pytest.raises(SystemExit) as exc:
            main(words[1:])
        assert exc.value.code == 0, command
    else:
        assert words[0] == "python", command
        assert _module(ROOT / words[1]).main(words[2:]) == 0, command
    return capsys.readouterr().out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_generated_blocks_are_current(doc, capsys, monkeypatch):
    regen = _module(ROOT / "benchmarks" / "regen_docs.py")
    blocks = list(regen.BLOCK.finditer(doc.read_text(encoding="utf-8")))
    assert blocks, f"{doc} has no generated blocks"
    for m in blocks:
        assert regen.argv_of(m.group("cmd"))[0] == sys.executable
        assert _run_in_process(m.group("cmd"), capsys, monkeypatch) == m.group("body"), (
            f"{doc.name}: the block of `{m.group('cmd')}` is stale; run benchmarks/regen_docs.py {doc}")
