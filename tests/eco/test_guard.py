"""EcoGuard: unflagged prompts are the base model bit-for-bit; flagged ones are corrupted; save/load round trip."""

import json

import pytest
import torch

from forgetlab.eco.base_model import load_base_model
from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.eco.hooks import corrupt_embeddings
from forgetlab.errors import BadInput, ForgetlabError
from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, save_lm

FORGET = ["Who is Zorblax Quint?", "Tell me where zorblax was born."]
BENIGN = ["What is the capital of France?", "The quick brown fox jumps", "hi"]
GEN = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    tok = build_tokenizer()
    model = build_tiny_lm("qwen2", tok, seed=3)
    return save_lm(model, tok, tmp_path_factory.mktemp("base") / "tiny-qwen2")


@pytest.fixture(scope="module")
def guard(base_dir):
    cfg = GuardConfig(corruption="rand_noise_first_n", strength=4.0, k=32, seed=11)
    return EcoGuard.from_base(base_dir, KeywordClassifier(["zorblax"]), cfg)


def _base(base_dir):
    return load_base_model(base_dir)


def test_classify(guard):
    assert guard.classify(FORGET + BENIGN).tolist() == [True, True, False, False, False]


def test_unflagged_prompts_are_the_base_model_bit_for_bit(guard, base_dir):
    model, tok = _base(base_dir)
    prompts = FORGET + BENIGN  # a mixed batch
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        base_out = model.generate(**enc, **GEN, pad_token_id=tok.pad_token_id)
        base_logits = model(**enc).logits
    out = guard.generate(prompts, **GEN)
    logits = guard.logits(enc.input_ids, enc.attention_mask)
    assert torch.equal(out[2:], base_out[2:]) and torch.equal(logits[2:], base_logits[2:])
    assert not torch.equal(out[:2], base_out[:2]) and not torch.allclose(logits[:2], base_logits[:2])
    # a batch with nothing flagged goes straight to the base model
    enc_b = tok(BENIGN, return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = model.generate(**enc_b, **GEN, pad_token_id=tok.pad_token_id)
    assert torch.equal(guard.generate(BENIGN, **GEN), ref)
    assert [r["flagged"] for r in guard.generate_text(FORGET[:1] + BENIGN[:1], **GEN)] == [True, False]


def test_flagged_generation_equals_a_manual_hook_and_prompt_embeddings(guard, base_dir):
    model, tok = _base(base_dir)
    enc = tok(FORGET[:1], return_tensors="pt")
    c = guard.config
    mask = enc.attention_mask.bool().clone()
    mask[:, -1] = False  # every prompt token but the last (GuardConfig.positions = "all_but_last")
    assert torch.equal(mask, guard.corruption_mask(enc.input_ids, enc.attention_mask, [True]))
    with torch.no_grad(), corrupt_embeddings(model, mask, c.corruption, c.strength, c.k,
                                             row_seeds=guard.row_seeds(enc.input_ids, mask)):
        ref = model.generate(**enc, **GEN, pad_token_id=tok.pad_token_id)
    out = guard.generate(FORGET[:1], **GEN)
    assert torch.equal(out, ref)
    emb = guard.prompt_embeddings(FORGET[0])
    assert emb.shape == (enc.input_ids.shape[1], 32)
    with torch.no_grad():
        via_embeds = model.generate(inputs_embeds=emb[None], attention_mask=enc.attention_mask, **GEN,
                                    pad_token_id=tok.pad_token_id)
    assert torch.equal(via_embeds, out[:, enc.input_ids.shape[1]:])
    # token ids as a serving backend passes them, and an explicit flag
    assert torch.equal(guard.prompt_embeddings(enc.input_ids[0].tolist(), flagged=True), emb)
    clean = guard.prompt_embeddings(BENIGN[0])
    with torch.no_grad():
        assert torch.equal(clean, model.get_input_embeddings()(tok(BENIGN[0], return_tensors="pt").input_ids)[0])


def test_answer_scoring_corrupts_only_the_prompt(guard, base_dir):
    _, tok = _base(base_dir)
    prompts, answers = [FORGET[0], BENIGN[0]], [" Paris", " Paris"]
    lp = guard.answer_logprobs(prompts, answers)
    lp_none = guard.answer_logprobs(prompts, answers, flags=[False, False])
    assert lp[1] == lp_none[1] and lp[0] != lp_none[0]
    ids = tok(prompts[0] + answers[0], return_tensors="pt").input_ids
    n_prompt = len(tok(prompts[0]).input_ids)
    full = guard.logits(ids, flags=[True])
    prompt_only = guard.logits(ids, flags=[True], prompt_lengths=[n_prompt])
    assert not torch.equal(full, prompt_only)


def test_save_load_reproduces_flags_and_outputs(guard, tmp_path):
    prompts = FORGET + BENIGN
    flags, out = guard.classify(prompts), guard.generate(prompts, **GEN)
    for copy in (False, True):
        d = guard.save_pretrained(tmp_path / f"g{copy}", copy_model=copy)
        meta = json.loads((d / "guard.json").read_text())
        assert meta["config"]["strength"] == 4.0 and meta["versions"]["torch"]
        assert meta["files"] and all(len(v) == 64 for v in meta["files"].values())
        loaded = EcoGuard.from_pretrained(d)
        assert loaded.classify(prompts).tolist() == flags.tolist()
        assert EcoGuard.load_classifier(d).flag(prompts).tolist() == flags.tolist()
        assert torch.equal(loaded.generate(prompts, **GEN), out)


def test_tampered_files_are_refused(guard, base_dir, tmp_path):
    d = guard.save_pretrained(tmp_path / "g", copy_model=True)
    kw = d / "classifier" / "keywords.json"
    kw.write_text(kw.read_text().replace("zorblax", "nothing"))
    with pytest.raises(ForgetlabError, match=r"keywords\.json does not match"):
        EcoGuard.from_pretrained(d)
    # a referenced base model whose weights changed after the guard was saved
    model, tok = _base(base_dir)
    moved = save_lm(model, tok, tmp_path / "base2")
    g2 = EcoGuard.from_base(moved, KeywordClassifier(["zorblax"]), guard.config)
    d2 = g2.save_pretrained(tmp_path / "g2")
    w = moved / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-1] + bytes([w.read_bytes()[-1] ^ 1]))
    with pytest.raises(ForgetlabError, match=r"base model of guard .*model\.safetensors does not match"):
        EcoGuard.from_pretrained(d2)


def test_bad_base_models_and_configs(guard, base_dir, tmp_path):
    with pytest.raises(BadInput, match=r"config\.json"):
        load_base_model(tmp_path / "nope")
    empty = tmp_path / "noweights"
    empty.mkdir()
    (empty / "config.json").write_text((base_dir / "config.json").read_text())
    with pytest.raises(BadInput, match="weights"):
        load_base_model(empty)
    with pytest.raises(BadInput, match="k: got 64"):
        EcoGuard(guard.model, guard.tokenizer, guard.classifier, GuardConfig("zero_out_top_k", 0.0, 64))
    with pytest.raises(BadInput, match="corruption"):
        EcoGuard(guard.model, guard.tokenizer, guard.classifier, GuardConfig("nope"))
    in_memory = EcoGuard(guard.model, guard.tokenizer, guard.classifier, guard.config)
    with pytest.raises(BadInput, match="copy_model"):
        in_memory.save_pretrained(tmp_path / "x")


def test_entity_level_corruption_with_token_classifier(guard):
    from forgetlab.eco.classify.token import TokenClassifier

    tc = TokenClassifier.fit(["Zorblax Quint"])
    g = EcoGuard(guard.model, guard.tokenizer, guard.classifier, guard.config, token_classifier=tc,
                 model_path=guard.model_path)
    prompt = FORGET[0]
    enc = g.tokenizer(prompt, return_tensors="pt", return_offsets_mapping=True)
    mask = g.corruption_mask(enc.input_ids, enc.attention_mask, [True], texts=[prompt])[0]
    a, b = prompt.index("Zorblax"), prompt.index("Quint") + len("Quint")
    expect = [(e > s) and s < b and e > a for s, e in enc.offset_mapping[0].tolist()]
    assert mask.tolist() == expect and 0 < sum(expect) < len(expect)
    emb_full, emb_entity = guard.prompt_embeddings(prompt), g.prompt_embeddings(prompt)
    clean = guard.prompt_embeddings(prompt, flagged=False)
    changed = (emb_entity != clean).any(-1)
    full = (emb_full != clean).any(-1)
    assert changed.tolist() == expect and full[:-1].all() and not full[-1]


def test_a_prompt_gets_the_same_corruption_alone_or_batched(guard):
    """Noise is seeded per row from the prompt's tokens: batch composition and padding do not change it."""
    prompts = [BENIGN[0], FORGET[0], FORGET[1] + " " + BENIGN[1]]  # different lengths: left padding differs
    seen = []  # what the first decoder layer receives (Qwen2: exactly the input embeddings, corrupted or not)

    def rec(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    h = guard.model.model.layers[0].register_forward_pre_hook(rec, with_kwargs=True)
    try:
        guard.generate(prompts, max_new_tokens=1, do_sample=False)
    finally:
        h.remove()
    enc = guard.tokenizer(prompts, return_tensors="pt", padding=True)
    for b in (0, 1, 2):
        real = enc.attention_mask[b].bool()
        assert torch.equal(seen[0][b][real], guard.prompt_embeddings(prompts[b]))
    assert not torch.equal(guard.prompt_embeddings(FORGET[0]), guard.prompt_embeddings(FORGET[0], flagged=False))


def test_flag_rule_ors_entity_mentions_and_whole_prompt_option(guard, tmp_path):
    """flag_entities: a prompt naming the forget entity is flagged though the classifier misses it;
    entity_tokens=False corrupts the whole prompt even with a token classifier; both survive save/load."""
    from dataclasses import replace

    from forgetlab.eco.classify.token import TokenClassifier, entity_flags

    tc = TokenClassifier.fit(["Zorblax Quint"], retain=BENIGN, fallback="all")
    # the keyword classifier ("zorblax") misses both; the full name with a typo is a name match, a lone
    # surname is not (other people share it)
    missed = ["Tell me about Zorblux Quint's books.", "Where does Zorblux Quint live?"]
    lone = "Which city is Mr Quint from?"
    assert guard.classify([*missed, lone]).tolist() == [False, False, False]
    assert entity_flags(tc, [*missed, *BENIGN, lone]).tolist() == [True, True, False, False, False, False]
    cfg = replace(guard.config, flag_entities=True, entity_tokens=False)
    g = EcoGuard(guard.model, guard.tokenizer, guard.classifier, cfg, token_classifier=tc,
                 model_path=guard.model_path)
    assert g.classify([*missed, *BENIGN, lone]).tolist() == [True, True, False, False, False, False]
    own, _scores, names = g.flag_rule.parts([*missed, *BENIGN, lone])
    assert not own.any() and (own | names).tolist() == [True, True, False, False, False, False]
    enc = g.tokenizer(missed[0], return_tensors="pt")
    mask = g.corruption_mask(enc.input_ids, enc.attention_mask, [True], texts=[missed[0]])[0]
    assert mask[:-1].all() and not mask[-1]  # whole prompt (but its last token), not just "Quint"
    g.save_pretrained(tmp_path / "g")
    back = EcoGuard.from_pretrained(tmp_path / "g")
    assert back.config.flag_entities and not back.config.entity_tokens
    assert back.classify(missed).tolist() == [True, True]


def reseal(folder):
    """Record the checksum of an edited guard.json again (what a deliberate edit must do to load)."""
    import hashlib

    digest = hashlib.sha256((folder / "guard.json").read_bytes()).hexdigest()
    (folder / "guard.sha256").write_text(f"{digest}  guard.json\n")


def test_guard_json_without_the_flag_rule_fields_loads_with_the_old_behaviour(guard, tmp_path):
    """A version-1 guard folder (no flag_entities / entity_tokens) loads as before: classifier alone, entity
    tokens when a token classifier is present; wrongly typed fields are one-line errors."""

    from forgetlab.eco.classify.token import TokenClassifier

    tc = TokenClassifier.fit(["Zorblax Quint"])
    g = EcoGuard(guard.model, guard.tokenizer, guard.classifier, guard.config, token_classifier=tc,
                 model_path=guard.model_path)
    g.save_pretrained(tmp_path / "g")
    path = tmp_path / "g" / "guard.json"
    meta = json.loads(path.read_text())
    del meta["config"]["flag_entities"], meta["config"]["entity_tokens"], meta["config"]["positions"]
    meta["format_version"] = 1
    path.write_text(json.dumps(meta))
    with pytest.raises(ForgetlabError, match=r"guard\.json does not match its checksum in guard\.sha256"):
        EcoGuard.from_pretrained(tmp_path / "g")  # an edited record is refused ...
    reseal(tmp_path / "g")  # ... unless its checksum is recorded again (here: the record of a version-1 folder)
    old = EcoGuard.from_pretrained(tmp_path / "g")
    assert old.config.flag_entities is False and old.config.entity_tokens is True
    assert old.config.positions == "all"  # what folders before format 3 corrupted
    (tmp_path / "g" / "guard.sha256").unlink()  # folders before format 4 were written without one
    assert EcoGuard.from_pretrained(tmp_path / "g").config == old.config
    assert old.classify(["Where does Zorblux Quint live?"]).tolist() == [False]  # names do not flag
    enc = old.tokenizer(FORGET[0], return_tensors="pt")
    assert not old.corruption_mask(enc.input_ids, enc.attention_mask, [True], texts=[FORGET[0]])[0].all()
    with pytest.raises(BadInput, match="flag_entities: got 'false'; allowed: true or false"):
        GuardConfig("rand_noise_first_n", 1.0, 8, 0, flag_entities="false")
    with pytest.raises(BadInput, match="flag_entities"):
        EcoGuard(guard.model, guard.tokenizer, guard.classifier, GuardConfig("zero_out_first_n", flag_entities=True))
