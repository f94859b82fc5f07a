"""A guard behaves the same on every causal-LM architecture of the installed transformers.

For each model type whose tiny configuration builds (forgetlab.testing.tiny_lm.tiny_config_for), with the KV
cache on and off: guarded generation runs; a flagged row changes; an unflagged row is bit-identical to the base
model; the generated tokens are what the model gives when fed the corrupted prompt embeddings and the clean
generated ones (only prompt positions corrupted); and with a cache in use exactly one forward pass (the
prompt's) is corrupted, without one every full re-read corrupts the prompt identically. Architectures whose base
model already makes a row depend on the others of its batch (probed: mixture-of-experts routing, rwkv's
recurrent step) are compared in a batch of their own. Its own CI step (`make test-archs`): it takes minutes.
"""

import pytest
import torch

from forgetlab.eco.classify.keyword import KeywordClassifier
from forgetlab.eco.guard import EcoGuard, GuardConfig
from forgetlab.eco.hooks import corrupt_embeddings, input_embeddings
from forgetlab.errors import ForgetlabError
from forgetlab.testing.tiny_lm import build_tokenizer, causal_lm_types, tiny_config_for

pytestmark = pytest.mark.archs

TYPES = causal_lm_types()
NEW = 4
MIN_PASSING = 55
PASSED: list[str] = []
IDS = torch.tensor([[5, 9, 12, 7, 30, 11], [6, 14, 8, 21, 9, 17]])  # two prompts, no padding
MUST_PASS = ("mamba", "mamba2", "falcon_mamba", "rwkv", "llama", "gpt2", "gpt_neox", "qwen2", "mistral")


@pytest.fixture(scope="module")
def tokenizer():
    corpus = ["the quick brown fox jumps over the lazy dog who wrote the book about paris"] * 3
    return build_tokenizer(corpus, vocab_size=80, pretokenizer="metaspace")


def _pad(model) -> int:
    """The model's pad id, never generated here (suppressed): some models (roberta, xlm) compute positions by
    skipping pad tokens, which a cached step cannot see."""
    pad = getattr(model.config, "pad_token_id", None)
    return pad if isinstance(pad, int) else 0


def _generate(model, ids, use_cache, **kw):
    pad = _pad(model)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False,
                         use_cache=use_cache, return_dict_in_generate=True, output_logits=True, pad_token_id=pad,
                         suppress_tokens=[pad], **kw)
    return out.sequences, torch.stack(out.logits, 1)  # [B, T + NEW], [B, NEW, V]


def _reference_logits(model, guard, seq, T):
    """Teacher-forced logits ``[NEW, V]`` of ``seq`` whose prompt positions carry the guard's corrupted
    embeddings (written in by a plain hook of our own, the generated positions left clean)."""
    corrupted = guard.prompt_embeddings(seq[:T].tolist(), flagged=True)

    def put(module, args, out):
        out = out.clone()
        out[0, :T] = corrupted
        return out

    handle = input_embeddings(model).register_forward_hook(put)
    try:
        return model(input_ids=seq[None], attention_mask=torch.ones(1, len(seq), dtype=torch.long),
                     use_cache=False).logits[
            0, T - 1:len(seq) - 1]
    finally:
        handle.remove()


def _batch_dependent(model, use_cache: bool) -> bool:
    """Does the base model's output for one row depend on the other rows of its batch (mixture-of-experts
    routing; rwkv's recurrent step in transformers; batched reductions in a different order)? Probed by
    noising row 0's input embeddings: then an unflagged row is compared in a batch of its own."""
    if any(k in name.lower() for name, _ in model.named_modules() for k in ("expert", "router", "moe")):
        return True  # routing may depend on the batch in ways one probe does not reveal
    ids = torch.tensor([[5, 9, 12, 7, 30, 11], [6, 14, 8, 21, 9, 17]])
    noise = torch.randn(6, 32, generator=torch.Generator().manual_seed(0)) * 3

    def noisy(module, args, out):  # the prompt's embeddings of row 0 only
        if out.shape[1] < 6:
            return None
        out = out.clone()
        out[0, :6, :32] += noise.to(out.dtype)
        return out

    clean = model(input_ids=ids, use_cache=False).logits[1], _generate(model, ids, use_cache)[1][1]
    handle = input_embeddings(model).register_forward_hook(noisy)
    try:
        noised = model(input_ids=ids, use_cache=False).logits[1], _generate(model, ids, use_cache)[1][1]
    finally:
        handle.remove()
    return not all(torch.equal(a, b) for a, b in zip(clean, noised, strict=True))


def _self_consistent(model, use_cache) -> bool:
    """Does the base model's greedy generation equal the argmax of its own teacher-forced forward pass? (Not for
    every architecture: roberta, xlm and cpmant prepare generation inputs their own way.) Only then is the
    teacher-forced reference a check of the guard."""
    seq, _ = _generate(model, torch.tensor([[5, 9, 12, 7, 30, 11]]), use_cache)
    ref = model(input_ids=seq, attention_mask=torch.ones_like(seq), use_cache=False).logits[0, 5:-1]
    keep = torch.arange(ref.shape[-1]) != _pad(model)
    return torch.equal(torch.where(keep, ref, float("-inf")).argmax(-1), seq[0, 6:])


def _uses_cache(model, ids) -> bool:
    """Does generation with the cache on feed one token per step (a model that supports a cache)?"""
    lengths = []
    handle = input_embeddings(model).register_forward_hook(lambda m, a, o: lengths.append(o.shape[1]))
    try:
        _generate(model, ids, True)
    finally:
        handle.remove()
    return lengths[1:] and max(lengths[1:]) == 1


def _check(model, tokenizer, use_cache):
    guard = EcoGuard(model, tokenizer, KeywordClassifier(["never"]),
                     GuardConfig("rand_noise_first_n", 2.0, 32, seed=3))
    batch_dependent = _batch_dependent(model, use_cache)
    ids = IDS
    T = ids.shape[1]
    base_seq, base_logits = _generate(model, ids, use_cache)
    mask = guard.corruption_mask(ids, torch.ones_like(ids), [True, False])
    with corrupt_embeddings(model, mask, "rand_noise_first_n", 2.0, 32, row_seeds=guard.row_seeds(ids, mask)) as st:
        seq, logits = _generate(model, ids, use_cache)
    assert torch.equal(seq, guard.generate(input_ids=ids, flags=[True, False], max_new_tokens=NEW,
                                           do_sample=False, use_cache=use_cache, pad_token_id=_pad(model),
                                           suppress_tokens=[_pad(model)])), \
        "the guard's generate differs from its hook"
    reread = [c for past, t, c in st.history if past < T]  # calls that embedded prompt positions
    assert all(reread) and not any(c for past, t, c in st.history if past >= T), st.history
    if use_cache and _uses_cache(model, ids):
        assert st.corrupted_calls == 1, f"{st.corrupted_calls} corrupted forward passes with a cache in use"
    if batch_dependent:  # the unflagged row in a batch of its own: bit-identical to the base model
        alone = guard.generate(input_ids=ids[1:], flags=[False], max_new_tokens=NEW, do_sample=False,
                               use_cache=use_cache, pad_token_id=_pad(model), suppress_tokens=[_pad(model)])
        assert torch.equal(alone, _generate(model, ids[1:], use_cache)[0]), "unflagged row moved"
    else:
        assert torch.equal(seq[1], base_seq[1]) and torch.equal(logits[1], base_logits[1]), "unflagged row moved"
    if batch_dependent:  # the flagged row, too, is checked in a batch of its own
        seq, logits = _generate_guarded(guard, ids[:1], use_cache)
        base_logits = _generate(model, ids[:1], use_cache)[1]
    assert (logits[0, 0] - base_logits[0, 0]).abs().max() > 1e-6, "a flagged row did not change"
    if not _self_consistent(model, use_cache):
        return
    ref = _reference_logits(model, guard, seq[0], T)
    keep = torch.arange(ref.shape[-1]) != _pad(model)
    assert torch.equal(torch.where(keep, ref, float("-inf")).argmax(-1), seq[0, T:]), \
        "generated tokens differ from the teacher-forced reference"
    assert torch.allclose(ref[:, keep], logits[0][:, keep], atol=1e-3, rtol=1e-3)


def _generate_guarded(guard, ids, use_cache):
    """The guard's generation of ``ids`` (all flagged) with its logits."""
    pad = _pad(guard.model)
    out = guard.generate(input_ids=ids, flags=[True] * len(ids), max_new_tokens=NEW, do_sample=False,
                         use_cache=use_cache, return_dict_in_generate=True, output_logits=True, pad_token_id=pad,
                         suppress_tokens=[pad])
    return out.sequences, torch.stack(out.logits, 1)


TIME_MAJOR = ("xlnet",)  # embed [T, B]: the hook cannot tell rows apart, so the guard refuses them


@pytest.mark.parametrize("model_type", TYPES)
def test_guard_on_architecture(model_type, tokenizer, record_property):
    cfg = tiny_config_for(model_type)
    if cfg is None:
        pytest.skip(f"{model_type}: no tiny configuration builds from its defaults")
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg).eval()
    modes = []
    for use_cache in (True, False):
        try:
            with torch.no_grad():
                _generate(model, IDS, use_cache)  # the batch _check generates
            modes.append(use_cache)
        except Exception:  # the base model itself cannot generate this way at this size
            pass
    if not modes:
        pytest.skip(f"{model_type}: the base model does not generate at tiny size")
    if model_type in TIME_MAJOR:
        with torch.no_grad(), pytest.raises(ForgetlabError, match="time-major"):
            _check(model, tokenizer, modes[0])
        record_property("refused", "time-major embeddings [T, B, d]: the hook cannot tell rows apart, so the "
                                   "guard refuses the model with a one-line error")
        return
    with torch.no_grad():
        for use_cache in modes:
            _check(model, tokenizer, use_cache)
    PASSED.append(model_type)


def test_enough_architectures_pass():
    """Runs after the parametrized test: at least MIN_PASSING model types passed, the state-space and
    recurrent ones included (skips do not count)."""
    assert len(PASSED) >= MIN_PASSING, f"only {len(PASSED)} architectures passed: {PASSED}"
    missing = [t for t in MUST_PASS if t not in PASSED]
    assert not missing, f"must pass: {missing}"
