"""Tokenizer, tiny Llama training, the content-hash cache and loading like any HF model."""

from __future__ import annotations

import time

import pytest
import torch

from forgetlab.errors import ForgetlabError
from forgetlab.unlearning.lm import (
    LMConfig,
    TrainConfig,
    build_model,
    cached_lm,
    cached_tokenizer,
    check_encodable,
    collate,
    encode_pair,
    load_lm,
    prompt_of,
    train_tokenizer,
)
from forgetlab.unlearning.world import WorldConfig, make_world

MICRO_LM = LMConfig(hidden=32, layers=1, heads=2, intermediate=64, vocab_size=512)


@pytest.fixture(scope="module")
def world():
    return make_world(WorldConfig(n_authors=10, facts_min=5, facts_max=6, n_painters=2, n_countries=2,
                                  mc_per_subject=4))  # same as the micro fixture but TOFU-style answers


def test_encode_pair_masks_the_prompt(world):
    tok = train_tokenizer(world.all_text(), 512)
    it = world.forget("forget10")[0]
    ids, n_p = encode_pair(tok, prompt_of(it["question"]), it["answer"])
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.decode(ids[n_p:], skip_special_tokens=True).strip() == it["answer"]
    batch = collate([(ids, n_p), (ids[:-3], n_p)], tok.pad_token_id)
    assert (batch["labels"][0, :n_p] == -100).all() and (batch["labels"][0, n_p:] >= 0).all()
    assert batch["attention_mask"][1].sum() == len(ids) - 3


def test_tokenizer_that_cannot_encode_is_an_error(world):
    tok = train_tokenizer(world.all_text(), 512)
    check_encodable(tok, [it["answer"] for it in world.forget("forget10")])
    with pytest.raises(ForgetlabError, match=r"cannot encode.*☃"):
        check_encodable(tok, ["A snowman ☃ appears"])


def test_training_learns_and_cache_hits(micro, cache_dir):
    w, rec, path = micro["world"], micro["record"], micro["path"]
    items = w.training_items()
    assert rec["epoch_loss"][-1] < 0.8 * rec["epoch_loss"][0]
    assert "versions" in rec and rec["seed"] == 0
    t0 = time.perf_counter()
    path2, rec2 = cached_lm("target", items, micro["tok_dir"], micro["lm"], micro["train"], cache_dir)
    assert path2 == path and rec2["key"] == rec["key"] and time.perf_counter() - t0 < 2.0
    # another training set is another model
    path3, _ = cached_lm("target", items[:-1], micro["tok_dir"], micro["lm"], TrainConfig(epochs=1, batch_size=64),
                         cache_dir)
    assert path3 != path
    # loads like any HF model, identical logits on reload
    m1, tok = load_lm(path)
    m2, _ = load_lm(path)
    enc = tok([prompt_of(items[0]["question"])], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(m1(**enc).logits, m2(**enc).logits)
    assert not list(cache_dir.glob("models/.*"))  # no half-written folders left
    assert cached_tokenizer(w.all_text(), 512, cache_dir) == micro["tok_dir"]


def test_build_model_is_seeded(world):
    tok = train_tokenizer(world.all_text(), 512)
    a, b = build_model(MICRO_LM, tok, seed=1), build_model(MICRO_LM, tok, seed=1)
    c = build_model(MICRO_LM, tok, seed=2)
    wa, wb, wc = (m.get_input_embeddings().weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_load_rejects_folder_without_weights(tmp_path):
    from forgetlab.errors import BadInput

    with pytest.raises(BadInput, match="model"):
        load_lm(tmp_path)


def test_load_lm_without_tokenizer_is_a_clear_error(tmp_path):
    import json

    from forgetlab.errors import BadInput
    from forgetlab.unlearning.lm import load_lm

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(BadInput, match=r"model: .*allowed: a (model folder with its tokenizer|loadable)"):
        load_lm(tmp_path)
