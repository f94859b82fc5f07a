"""Which positions ECO corrupts under each protocol, and that corruption reaches the scores."""

from __future__ import annotations

import numpy as np
import torch

from forgetlab.eco.classify.token import TokenClassifier
from forgetlab.eco.corrupter import Corrupter, GuardConfig, continuation_mask
from forgetlab.eco.scoring import pack
from forgetlab.unlearning.lm import collate, encode_pair, load_lm, prompt_of, train_tokenizer
from forgetlab.unlearning.scoring import Corruption, score_answers
from forgetlab.unlearning.world import WorldConfig, make_world


def _setup():
    w = make_world(WorldConfig(n_authors=10, facts_min=5, facts_max=6, n_painters=2, n_countries=2,
                               mc_per_subject=4))
    tok = train_tokenizer(w.all_text(), 512)
    name = w.splits["forget10"][0]
    it = w.authors[name][0]
    return tok, name, prompt_of(it["question"]), it["answer"]


def _masks(tok, prompt, answer, corrupter, answer_entities=None):
    batch = pack([(tok(prompt).input_ids, tok(" " + answer, add_special_tokens=False).input_ids)] * 2,
                 tok.pad_token_id)
    mask = continuation_mask(corrupter, batch, [True, False], [prompt] * 2, [" " + answer] * 2, answer_entities)
    return batch, mask


def test_protocol_masks():
    tok, name, prompt, answer = _setup()
    assert name in answer  # TOFU-style answers repeat the name
    tc = TokenClassifier.fit([name])
    whole = Corrupter(tok, GuardConfig("zero_out_first_n", 0, 4, positions="all"))
    batch, dep = _masks(tok, prompt, answer, whole)
    n_p = batch.starts[0]
    assert dep[0, :n_p].all() and not dep[0, n_p:].any() and not dep[1].any()  # deployment: the prompt only
    _, pap = _masks(tok, prompt, answer, whole, answer_entities=tc)  # paper: + the answer's entity tokens
    assert pap[0, :n_p].all() and pap[0, n_p:].any() and not pap[0, n_p:].all() and not pap[1].any()
    name_ids = tok(" " + name, add_special_tokens=False)["input_ids"]
    marked = [i for i, m in zip(batch.ids[0, n_p:].tolist(), pap[0, n_p:].tolist(), strict=True) if m]
    assert marked == name_ids  # exactly the name's tokens inside the answer
    _, ent = _masks(tok, prompt, answer, Corrupter(tok, GuardConfig("zero_out_first_n", 0, 4), tc))
    assert ent[0, :n_p].any() and not ent[0, :n_p].all() and not ent[0, n_p:].any()
    _, last = _masks(tok, prompt, answer, Corrupter(tok, GuardConfig("zero_out_first_n", 0, 4)))
    assert last[0, :n_p - 1].all() and not last[0, n_p - 1]  # default: every prompt token but the last


def test_corruption_changes_only_flagged_scores(micro):
    model, tok = load_lm(micro["path"])
    w = micro["world"]
    rows = w.forget("forget10")[:4]
    prompts = [prompt_of(r["question"]) for r in rows]
    answers = [r["answer"] for r in rows]
    clean = score_answers(model, tok, prompts, answers)
    flags = np.array([True, False, True, False])
    corr = score_answers(model, tok, prompts, answers,
                         corruption=Corruption(Corrupter(tok, GuardConfig("rand_noise_first_n", 1.0, 8)), flags))
    for i in range(4):
        same = np.array_equal(clean.token_logprobs[i], corr.token_logprobs[i])
        assert same != bool(flags[i])
    # the scores equal a manual forward pass on the unpadded sequence
    ids, n_p = encode_pair(tok, prompts[1], answers[1], eos=False)
    with torch.no_grad():
        lp = torch.log_softmax(model(**{k: v for k, v in collate([(ids, n_p)], tok.pad_token_id).items()
                                        if k != "labels"}).logits[0], -1)
    manual = lp[torch.arange(n_p - 1, len(ids) - 1), torch.tensor(ids[n_p:])].numpy()
    np.testing.assert_allclose(clean.token_logprobs[1], manual, rtol=1e-5, atol=1e-6)


def test_eos_scored_last_as_open_unlearning(micro):
    """With ``eos``, each answer's scores end with ``log p(</s>)`` (a manual forward pass on ``prompt answer
    </s>`` agrees), the answer tokens before it unchanged; hits mark the argmax tokens."""
    model, tok = load_lm(micro["path"])
    rows = micro["world"].forget("forget10")[:3]
    prompts, answers = [prompt_of(r["question"]) for r in rows], [r["answer"] for r in rows]
    plain = score_answers(model, tok, prompts, answers)
    with_eos = score_answers(model, tok, prompts, answers, eos=True)
    ids, n_p = encode_pair(tok, prompts[0], answers[0], eos=True)
    with torch.no_grad():
        logits = model(**{k: v for k, v in collate([(ids, n_p)], tok.pad_token_id).items() if k != "labels"}).logits
    lp = torch.log_softmax(logits[0], -1)
    manual = lp[torch.arange(n_p - 1, len(ids) - 1), torch.tensor(ids[n_p:])].numpy()
    np.testing.assert_allclose(with_eos.token_logprobs[0], manual, rtol=1e-5, atol=1e-6)
    for a, b, h in zip(plain.token_logprobs, with_eos.token_logprobs, with_eos.hits, strict=True):
        assert len(b) == len(a) + 1 and len(h) == len(b)
        np.testing.assert_allclose(b[:-1], a, rtol=1e-5, atol=1e-6)
    hits = lp[torch.arange(n_p - 1, len(ids) - 1)].argmax(-1).numpy() == np.array(ids[n_p:])
    assert with_eos.hits[0].tolist() == hits.tolist()
