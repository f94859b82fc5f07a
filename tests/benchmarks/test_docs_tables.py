"""The speed tables in the docs are the discipline's rendering of the committed result files (never typed by
hand): every generated block that ``benchmarks/discipline.py`` prints equals its command's output now."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "benchmarks" / "grok.md"]


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    mod = sys.modules.setdefault(path.stem, mod)  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


REGEN = _module(ROOT / "benchmarks" / "regen_docs.py")
DISCIPLINE = _module(ROOT / "benchmarks" / "discipline.py")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_discipline_blocks_are_current(doc, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    blocks = [m for m in REGEN.BLOCK.finditer(doc.read_text(encoding="utf-8"))
              if m.group("cmd").startswith("python benchmarks/discipline.py")]
    assert blocks, f"{doc.name}: no table generated from a result file"
    for m in blocks:
        assert DISCIPLINE.main(shlex.split(m.group("cmd"))[2:]) == 0
        assert capsys.readouterr().out == m.group("body"), (
            f"{doc.name}: the block of `{m.group('cmd')}` is stale; run benchmarks/regen_docs.py {doc}")
