"""Fixtures for the unlearning benchmark tests: a tiny world and a session-wide model cache in a tmp folder."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    """One intra-op thread for this package's tests (set before the module fixtures that train models): on a
    shared 2-core machine a second thread makes small ops up to ~100x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("forgetlab-cache")


MICRO_WORLD = dict(n_authors=10, facts_min=5, facts_max=6, n_painters=2, n_countries=2, mc_per_subject=4,
                   answer_style="name-free")


@pytest.fixture(scope="session")
def micro(cache_dir):
    """A micro world and a micro Llama trained on it through the cache (shared by the lm and baseline tests)."""
    from forgetlab.unlearning.lm import LMConfig, TrainConfig, cached_lm, cached_tokenizer
    from forgetlab.unlearning.world import WorldConfig, make_world

    w = make_world(WorldConfig(**MICRO_WORLD))
    lm = LMConfig(hidden=32, layers=1, heads=2, intermediate=64, vocab_size=512)
    train = TrainConfig(epochs=8, lr=1e-2, batch_size=64)
    tok_dir = cached_tokenizer(w.all_text(), 512, cache_dir)
    path, rec = cached_lm("target", w.training_items(), tok_dir, lm, train, cache_dir)
    return {"world": w, "tok_dir": tok_dir, "lm": lm, "train": train, "path": path, "record": rec}
