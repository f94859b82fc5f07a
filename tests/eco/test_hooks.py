"""The embedding hook corrupts prompt positions only, across architectures, batches, padding and KV cache."""

import pytest
import torch

from forgetlab.eco.corruptions import apply_corruption
from forgetlab.eco.hooks import corrupt_embeddings
from forgetlab.errors import BadInput
from forgetlab.testing.tiny_lm import ARCHS, build_tiny_lm, build_tokenizer

PROMPTS = ["Who wrote the book?", "What is the capital of France? Paris", "hi there"]
KW = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False}


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module", params=ARCHS)
def model(request, tok):
    return build_tiny_lm(request.param, tok, seed=1)


def _enc(tok, side):
    tok.padding_side = side
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    tok.padding_side = "left"
    return enc


def _mask(enc):
    m = enc.attention_mask.bool().clone()
    m[2] = False  # the last prompt is not flagged
    return m


class Recorder:
    """A hook registered by somebody else: records every embedding call (ids and output)."""

    def __init__(self):
        self.calls = []

    def __call__(self, module, args, output):
        self.calls.append((args[0].clone(), output.detach().clone()))


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_equals_inputs_embeds_reference(model, tok, use_cache):
    enc = _enc(tok, "left")
    mask = _mask(enc)
    T = enc.input_ids.shape[1]
    kw = dict(KW, use_cache=use_cache, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        base = model.generate(**enc, **kw)
        with corrupt_embeddings(model, mask, "rand_noise_first_n", 5.0, 16, torch.Generator().manual_seed(0)):
            out = model.generate(**enc, **kw)
        clean = model.get_input_embeddings()(enc.input_ids)
        ref_embeds = apply_corruption("rand_noise_first_n", clean, mask, 5.0, 16, torch.Generator().manual_seed(0))
        ref = model.generate(inputs_embeds=ref_embeds, attention_mask=enc.attention_mask, **kw)
    assert torch.equal(out[:, T:], ref), "hooked generate must equal generation from corrupted inputs_embeds"
    assert torch.equal(out[2], base[2]), "an unflagged row must be bit-for-bit the base model's output"
    assert not torch.equal(out[:2], base[:2]), "flagged rows must be changed by a strong corruption"


@pytest.mark.parametrize("use_cache", [True, False])
def test_generated_tokens_are_never_corrupted(model, tok, use_cache):
    enc = _enc(tok, "left")
    T = enc.input_ids.shape[1]
    emb = model.get_input_embeddings()
    mask = torch.ones_like(enc.input_ids, dtype=torch.bool)
    with torch.no_grad(), corrupt_embeddings(model, mask, "add_value_first_n", 3.0, 8) as state:
        rec = Recorder()
        h = emb.register_forward_hook(rec)  # registered after ours: sees the corrupted output
        try:
            model.generate(**enc, **KW, use_cache=use_cache, pad_token_id=tok.pad_token_id)
        finally:
            h.remove()
        assert len(rec.calls) == KW["max_new_tokens"]
        for i, (ids, out) in enumerate(rec.calls):
            clean = emb.weight[ids]
            start = 0 if not use_cache and i > 0 else (0 if i == 0 else T + i - 1)
            n_prompt = max(0, T - start)
            assert torch.equal(out[:, n_prompt:], clean[:, n_prompt:]), f"call {i}: a generated token changed"
            if n_prompt:
                assert torch.allclose(out[:, :n_prompt, :8], clean[:, :n_prompt, :8] + 3.0)
    assert state.corrupted_calls == (1 if use_cache else KW["max_new_tokens"])


def test_forward_right_padding_unflagged_rows_bit_for_bit(model, tok):
    enc = _enc(tok, "right")
    mask = _mask(enc)
    with torch.no_grad():
        base = model(**enc).logits
        with corrupt_embeddings(model, mask, "zero_out_top_k", 0.0, 16):
            guarded = model(**enc).logits
    assert torch.equal(guarded[2], base[2])
    assert not torch.allclose(guarded[0], base[0])


def test_mask_function_and_prompt_only_positions(model, tok):
    enc = _enc(tok, "left")
    ids = enc.input_ids
    T = ids.shape[1]
    full = torch.cat([ids, ids[:, -3:]], dim=1)  # prompt + 3 answer tokens, teacher forced
    attn = torch.cat([enc.attention_mask, torch.ones(3, 3, dtype=torch.long)], dim=1)
    mask = torch.zeros(3, T, dtype=torch.bool)
    mask[0] = enc.attention_mask[0].bool()  # only row 0, only its prompt part
    rec = Recorder()
    with torch.no_grad():
        base = model(input_ids=full, attention_mask=attn).logits
        with corrupt_embeddings(model, mask, "flip_sign_first_n", 0.0, 32):
            h = model.get_input_embeddings().register_forward_hook(rec)
            try:
                guarded = model(input_ids=full, attention_mask=attn).logits
            finally:
                h.remove()
    out = rec.calls[0][1]
    clean = model.get_input_embeddings().weight[full]
    assert torch.equal(out[:, T:], clean[:, T:]), "answer positions must not be corrupted"
    assert torch.equal(out[1:], clean[1:])
    assert torch.equal(guarded[1:], base[1:])
    # the same with a mask function of the input ids (flag rows that contain the token of 'book')
    with torch.no_grad(), corrupt_embeddings(model, lambda x: torch.zeros_like(x, dtype=torch.bool),
                                             "flip_sign_first_n", 0.0, 32):
        assert torch.equal(model(input_ids=full, attention_mask=attn).logits, base)


def test_beams_and_return_sequences(tok):
    model = build_tiny_lm("llama", tok, seed=2)
    enc = _enc(tok, "left")
    mask = _mask(enc)
    kw = dict(KW, num_beams=2, num_return_sequences=2, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        base = model.generate(**enc, **kw)
        with corrupt_embeddings(model, mask, "rand_noise_top_k", 4.0, 16, torch.Generator().manual_seed(3)):
            out = model.generate(**enc, **kw)
    assert out.shape == base.shape
    assert torch.equal(out[4:], base[4:])  # the 2 returned sequences of the unflagged third prompt


def test_hook_removes_only_its_own_handles_even_on_error(tok):
    model = build_tiny_lm("gpt2", tok)
    emb = model.get_input_embeddings()
    other = Recorder()
    h_emb = emb.register_forward_hook(other)
    h_model = model.register_forward_pre_hook(lambda m, a: None)
    n_emb, n_pre, n_post = len(emb._forward_hooks), len(model._forward_pre_hooks), len(model._forward_hooks)
    enc = _enc(tok, "left")
    with pytest.raises(RuntimeError, match="boom"), corrupt_embeddings(model, _mask(enc), "reverse_tokens"):
        assert len(emb._forward_hooks) == n_emb + 1
        raise RuntimeError("boom")
    assert (len(emb._forward_hooks), len(model._forward_pre_hooks), len(model._forward_hooks)) == (
        n_emb, n_pre, n_post)
    with torch.no_grad():
        model(**enc)
    assert len(other.calls) == 1, "somebody else's hook must survive"
    h_emb.remove()
    h_model.remove()


def test_bad_arguments(tok):
    model = build_tiny_lm("llama", tok)
    enc = _enc(tok, "left")
    with pytest.raises(BadInput, match="k: got 33"), corrupt_embeddings(model, _mask(enc), "zero_out_top_k", 0, 33):
        pass
    with pytest.raises(BadInput, match="corruption"), corrupt_embeddings(model, _mask(enc), "nope"):
        pass
    with pytest.raises(BadInput, match="strength"), corrupt_embeddings(model, _mask(enc), "add_value_top_k", -1.0, 2):
        pass
    assert not model.get_input_embeddings()._forward_hooks

    class NoEmbeddings(torch.nn.Module):
        def get_input_embeddings(self):
            raise NotImplementedError

    with pytest.raises(BadInput, match="input embeddings"), corrupt_embeddings(NoEmbeddings(), _mask(enc), "nope"):
        pass


def test_manual_cached_loop_with_positional_cache(tok):
    """A hand-written decoding loop passing the KV cache positionally: the new token is not corrupted."""
    model = build_tiny_lm("llama", tok, seed=4)
    enc = _enc(tok, "left")
    emb = model.get_input_embeddings()
    rec = Recorder()
    with torch.no_grad(), corrupt_embeddings(model, enc.attention_mask.bool(), "add_value_first_n", 2.0, 4):
        h = emb.register_forward_hook(rec)
        try:
            out = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            attn = torch.cat([enc.attention_mask, torch.ones_like(nxt)], dim=1)
            model(nxt, attn, None, out.cache)  # input_ids, attention_mask, position_ids, cache
        finally:
            h.remove()
    assert len(rec.calls) == 2
    ids, seen = rec.calls[1]
    assert torch.equal(seen, emb.weight[ids]), "the generated token must not be corrupted"
    assert not torch.equal(rec.calls[0][1], emb.weight[rec.calls[0][0]])
