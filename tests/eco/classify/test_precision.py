"""The classifier's encoder precision: detection, resolution at fit time, bf16 flags against fp32, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from classifier_synth import make_sets

from forgetlab.eco.classify.precision import bf16_is_fast, cpu_flags, resolve_precision
from forgetlab.eco.classify.prompt import PromptClassifier
from forgetlab.errors import BadInput


def test_auto_is_bf16_exactly_where_the_cpu_has_bf16_units(tmp_path):
    assert resolve_precision("auto", flags=frozenset({"avx2", "fma"})) == "fp32"
    assert resolve_precision("auto", flags=frozenset({"avx512f", "amx_bf16"})) == "bf16"
    assert resolve_precision("auto", flags=frozenset({"avx512_bf16"})) == "bf16"
    assert resolve_precision("fp32", flags=frozenset({"amx_bf16"})) == "fp32"
    assert resolve_precision("bf16", flags=frozenset()) == "bf16"
    with pytest.raises(BadInput, match="precision"):
        resolve_precision("fp16")
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse2 avx2 amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == frozenset({"fpu", "sse2", "avx2", "amx_bf16"})
    assert cpu_flags(tmp_path / "missing") == frozenset() and not bf16_is_fast(flags=frozenset({"avx2"}))


@pytest.fixture(scope="module")
def pair(encoder):
    """The same small fit in fp32 and in bf16 (same seed and prompts), and the shared encoder afterwards."""
    forget, retain = make_sets(n_forget=40, n_retain_people=40, n_general=40, seed=1)
    kw = dict(fpr=0.1, seed=0, first_stage=False, sentences=False, encoder=encoder)
    return (PromptClassifier.fit(forget, retain, precision="fp32", **kw),
            PromptClassifier.fit(forget, retain, precision="bf16", **kw))


def test_bf16_calibrates_and_flags_like_fp32(pair, encoder):
    fp32, bf16 = pair
    assert fp32.config.precision == "fp32" and bf16.config.precision == "bf16"
    assert next(bf16.encoder.model.parameters()).dtype == torch.bfloat16
    assert encoder.precision == "fp32" and next(encoder.model.parameters()).dtype == torch.float32  # not cast
    held = [p for name in ("forget", "retain") for p in fp32.heldout[name]]
    assert held == [p for name in ("forget", "retain") for p in bf16.heldout[name]]
    s32, s16 = fp32.score(held), bf16.score(held)
    assert np.abs(s32 - s16).max() < 0.05 * (np.abs(s32).max() + 1)  # bf16's ~3 significant digits
    agree = np.mean(fp32.flag(held) == bf16.flag(held))
    assert agree >= 0.95, agree  # the stated tolerance: a flag may change only near its threshold
    assert abs(fp32.threshold - bf16.threshold) < 0.05 * (abs(fp32.threshold) + 1)


def test_precision_is_saved_resolved_and_loaded(pair, encoder, tmp_path):
    fp32, bf16 = pair
    loaded = PromptClassifier.from_pretrained(bf16.save_pretrained(tmp_path / "bf16"), encoder=encoder)
    assert loaded.encoder.precision == "bf16" and encoder.precision == "fp32"
    held = bf16.heldout["forget"] + bf16.heldout["retain"]
    assert np.array_equal(loaded.flag(held), bf16.flag(held))
    old = fp32.save_pretrained(tmp_path / "old")  # a classifier saved before precision existed loads in fp32
    meta = json.loads((old / "classifier.json").read_text())
    del meta["config"]["precision"]
    (old / "classifier.json").write_text(json.dumps(meta))
    assert PromptClassifier.from_pretrained(old, encoder=encoder).config.precision == "fp32"
    with pytest.raises(BadInput, match="precision"):
        PromptClassifier.fit(["a b"], ["c d"], precision="int8", encoder=encoder)
