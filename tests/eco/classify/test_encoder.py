"""Encoder loading (packaged MiniLM or any local folder), pooling, windows; fits with a tiny local encoder."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from classifier_synth import make_sets

from forgetlab.eco.classify.encoder import Encoder, token_windows
from forgetlab.eco.classify.prompt import PromptClassifier
from forgetlab.errors import BadInput


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, encoder):
    """A 1-layer, 32-wide BERT with MiniLM's tokenizer, saved as a local folder."""
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=encoder.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    path = tmp_path_factory.mktemp("tiny_encoder")
    with torch.random.fork_rng():  # seed the tiny model's init without touching the suite's global RNG
        torch.manual_seed(0)
        model = BertModel(cfg)
    model.save_pretrained(str(path))
    encoder.tokenizer.save_pretrained(str(path))
    return path


def test_minilm_embeddings_are_unit_norm_and_semantic(encoder):
    x = encoder.embed(["Where was the author born?", "In which town was the writer born?",
                       "How do I boil pasta?"])
    assert x.shape == (3, 384) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.2  # paraphrases closer than an unrelated question


def test_embedding_does_not_depend_on_batch_order(encoder):
    texts = ["a short one", "a somewhat longer sentence about writers and their books", "mid length text"]
    a = encoder.embed(texts, batch_size=3)
    b = encoder.embed(texts[::-1], batch_size=1)[::-1]
    assert np.allclose(a, b, atol=1e-5)  # padding is masked out of the mean


def test_token_windows_cover_every_token(encoder):
    text = " ".join(f"word{i}" for i in range(200))
    n = len(encoder.tokenizer(text, add_special_tokens=False)["input_ids"])
    spans = token_windows(encoder.tokenizer, text, 32, 16)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)  # first starts at 0, last is end-aligned
    assert len(spans) == -(-(n - 32) // 16) + 1
    assert all(b2 > a1 and a2 < b1 for (a1, b1), (a2, b2) in itertools.pairwise(spans))  # overlap
    assert token_windows(encoder.tokenizer, "short text", 32, 16) == [(0, 10)]


def test_bad_encoder_folder(tmp_path):
    with pytest.raises(BadInput, match="encoder"):
        Encoder.load(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BadInput, match="encoder"):
        Encoder.load(tmp_path)


def test_local_encoder_fit_is_deterministic_and_round_trips(tiny_dir, tmp_path):
    enc = Encoder.load(tiny_dir)
    assert enc.ref == str(tiny_dir) and enc.dim == 32
    forget, retain = make_sets(40, 40, 40, seed=2)
    kw = {"fpr": 0.1, "seed": 3, "first_stage_miss": 0.1, "encoder": enc}
    a = PromptClassifier.fit(forget, retain, **kw)
    b = PromptClassifier.fit(forget, retain, **kw)
    probe = forget[:5] + retain[:5]
    assert a.threshold == b.threshold and np.array_equal(a.score(probe), b.score(probe))
    assert a.report == b.report
    c = PromptClassifier.fit(forget, retain, **{**kw, "seed": 4})
    assert c.report["n"] == a.report["n"] and c.threshold != a.threshold  # another split
    a.save_pretrained(tmp_path / "clf")
    back = PromptClassifier.from_pretrained(tmp_path / "clf")  # loads the encoder from the recorded folder
    assert back.encoder.ref == str(tiny_dir)
    assert np.array_equal(back.score(probe), a.score(probe))
