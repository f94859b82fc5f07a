"""Published unlearning benchmarks in the layouts their authors ship: TOFU, MUSE, WMDP and MMLU, one module each.

Each module names the files and fields of its format (optional where the source lacks them), loads a folder in
that layout with errors that name the expected files and fields, and writes the synthetic world
(:mod:`forgetlab.unlearning.world`) in the same layout, so ``forgetlab eco world`` produces data every loader
reads and the tests run on small fixtures written by the project, never downloaded. :mod:`.files` reads the
file kinds they use. Multiple-choice items are the project's one schema, :class:`~forgetlab.eco.mc.MCItem`.
"""

from __future__ import annotations

from pathlib import Path

from ...registry import Registry

LOADERS: Registry = Registry("suite", {
    "tofu": "forgetlab.unlearning.formats.tofu:load_tofu",
    "muse": "forgetlab.unlearning.formats.muse:load_muse",
    "wmdp": "forgetlab.unlearning.formats.wmdp:load_wmdp",
    "mmlu": "forgetlab.unlearning.formats.mmlu:load_mmlu",
})
"""Loader of each suite's folder: ``loader(folder, ...)``."""

WRITERS: Registry = Registry("layout", {
    "tofu": "forgetlab.unlearning.formats.tofu:write_tofu",
    "muse": "forgetlab.unlearning.formats.muse:write_muse",
    "wmdp": "forgetlab.unlearning.formats.wmdp:write_wmdp",
    "mmlu": "forgetlab.unlearning.formats.mmlu:write_mmlu",
})
"""Writer of the synthetic world in each layout: ``writer(world, out) -> [paths]``."""


def write_layouts(world, out: str | Path, layouts: tuple[str, ...] = tuple(WRITERS.in_order())) -> list[Path]:
    """Write ``world`` into ``out/<layout>/`` for each layout; returns the files written."""
    for name in layouts:
        WRITERS.check(name, "layouts")
    files: list[Path] = []
    for name in layouts:
        files += WRITERS.get(name)(world, Path(out) / name)
    return files
