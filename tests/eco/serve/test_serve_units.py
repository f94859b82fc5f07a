"""Pieces of the server without HTTP: text tracking (stops, EOS, UTF-8), per-row sampling, batching."""

from __future__ import annotations

import random
import threading

import pytest
import torch

from forgetlab.eco.serve.backends.transformers import (
    RowSampler,
    TextTracker,
    _held_suffix,
    _Row,
    row_generator,
)
from forgetlab.eco.serve.engine import Batcher
from forgetlab.eco.serve.types import Delta, Done, GenRequest
from forgetlab.errors import BadInput


def _track(tokenizer, ids, **req_kw):
    events = []
    req = GenRequest(prompt_ids=[1], classify_text="", max_tokens=req_kw.pop("max_tokens", 100),
                     emit=events.append, **req_kw)
    tracker = TextTracker([_Row(req, 0)], tokenizer, {tokenizer.eos_token_id})
    for tok in ids:
        if tracker.step([tok]) == [True]:
            break
    tracker.finish_all()
    text = "".join(e.text for e in events if isinstance(e, Delta))
    done = [e for e in events if isinstance(e, Done)]
    return events, text, done


def test_held_suffix():
    assert _held_suffix("hello wor", ("world",)) == 3
    assert _held_suffix("hello", ("xyz",)) == 0
    assert _held_suffix("ab", ("b", "abc")) == 2


def test_stop_string_across_tokens_is_cut_and_never_streamed(tiny_tokenizer):
    ids = tiny_tokenizer("Paris is the capital of France", add_special_tokens=False)["input_ids"]
    events, text, done = _track(tiny_tokenizer, ids, stop=("the cap",))
    assert text == "Paris is "
    assert done[0].finish_reason == "stop"
    assert all("the" not in e.text for e in events if isinstance(e, Delta))


def test_eos_stops_and_length_counts(tiny_tokenizer):
    ids = tiny_tokenizer("Paris is", add_special_tokens=False)["input_ids"]
    _, text, done = _track(tiny_tokenizer, [*ids, tiny_tokenizer.eos_token_id, *ids])
    # the end-of-sequence token counts as a completion token (as in OpenAI's and vLLM's usage), never as text
    assert text == "Paris is" and done[0].finish_reason == "stop" and done[0].completion_tokens == len(ids) + 1
    _, text, done = _track(tiny_tokenizer, ids * 5, max_tokens=len(ids))
    assert text == "Paris is" and done[0].finish_reason == "length"


def test_incomplete_utf8_is_held_back(tiny_tokenizer):
    s = "café ünïcödé 東京"
    ids = tiny_tokenizer(s, add_special_tokens=False)["input_ids"]
    events, text, _ = _track(tiny_tokenizer, ids)
    assert text == s
    assert all("\ufffd" not in e.text for e in events if isinstance(e, Delta))


def test_row_sampler_greedy_rows_untouched_and_seeded_rows_reproducible():
    scores = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    gens = [None, row_generator(5, 0), row_generator(5, 1)]
    out = RowSampler([0.0, 1.0, 1.0], [1.0, 0.9, 0.9], gens)(None, scores)
    assert torch.equal(out[0], scores[0])
    picks = out[1:].argmax(-1).tolist()
    again = RowSampler([0.0, 1.0, 1.0], [1.0, 0.9, 0.9], [None, row_generator(5, 0), row_generator(5, 1)])
    assert again(None, scores)[1:].argmax(-1).tolist() == picks
    assert torch.isinf(out[1]).sum() == 49  # exactly one finite score: the draw
    # top_p tiny: only the most likely token can be drawn
    top = RowSampler([1.0], [1e-6], [row_generator(1, 0)])(None, scores[:1])
    assert top.argmax(-1).item() == scores[0].argmax().item()


class _Recorder:
    name = "rec"

    def __init__(self):
        self.sizes, self.gate = [], threading.Event()

    def run_batch(self, requests):
        self.gate.wait(10)
        self.sizes.append(sum(r.n for r in requests))


def test_batcher_fills_batches_up_to_max_rows():
    rec = _Recorder()
    batcher = Batcher(rec, max_rows=4, window_s=0.2)
    reqs = [GenRequest(prompt_ids=[1], classify_text="", max_tokens=1, n=n) for n in (1, 2, 1, 3, 1)]
    for r in reqs:
        batcher.submit(r)
    rec.gate.set()
    batcher.close()
    assert sum(rec.sizes) == 8 and max(rec.sizes) <= 4
    assert rec.sizes[0] == 4  # the first batch waited for company: 1 + 2 + 1


class _Guard:
    """A guard stand-in whose classify records the prompts it saw (and can fail)."""

    def __init__(self, fail: bool = False):
        self.seen, self.fail = [], fail

    def classify(self, prompts):
        if self.fail:
            raise ValueError("classifier down")
        self.seen.append(list(prompts))
        return [p.startswith("forget") for p in prompts]


class _Backend:
    """Runs batches through ``classify_batch`` as the real backends do and records the flags it got."""

    name = "stand-in"

    def __init__(self, guard):
        self.guard, self.flags = guard, []

    def run_batch(self, requests):
        from forgetlab.eco.serve.backends import classify_batch

        self.flags += classify_batch(self.guard, requests)
        for r in requests:
            r.emit(Done(r.index_base, "length", 0))


def _served(guard, texts):
    from forgetlab.eco.serve.engine import ClassifyAhead

    backend, lock = _Backend(guard), threading.Lock()
    batcher = Batcher(backend, max_rows=4, window_s=0.01)
    ahead = ClassifyAhead(guard, batcher.submit, max_rows=4, lock=lock)
    events = {t: [] for t in texts}
    for t in texts:
        ahead.submit(GenRequest(prompt_ids=[1], classify_text=t, max_tokens=1, emit=events[t].append))
    ahead.close()
    batcher.close()
    return backend, events


def test_classify_ahead_classifies_each_request_once_before_generation():
    from forgetlab.eco.serve.types import Flagged

    guard = _Guard()
    texts = [f"forget {i}" if i % 3 == 0 else f"retain {i}" for i in range(10)]
    backend, events = _served(guard, texts)
    assert sorted(p for call in guard.seen for p in call) == sorted(texts)  # once each, none in the batch worker
    assert all(len(call) <= 4 for call in guard.seen)
    assert sorted(backend.flags) == sorted(t.startswith("forget") for t in texts)
    for t, evs in events.items():  # the verdict comes first, then the answer
        assert isinstance(evs[0], Flagged) and evs[0].flagged == t.startswith("forget")
        assert isinstance(evs[-1], Done)


def test_a_failing_classifier_fails_the_requests_and_nothing_generates_unflagged():
    from forgetlab.eco.serve.types import Failed

    backend, events = _served(_Guard(fail=True), ["forget a", "retain b"])
    assert backend.flags == []
    assert all(len(evs) == 1 and isinstance(evs[0], Failed) and "classification failed" in evs[0].message
               for evs in events.values())


def test_classify_ahead_auto_is_off_only_for_a_model_generating_on_this_cpu():
    from types import SimpleNamespace

    from forgetlab.eco.serve.engine import classifies_ahead
    from forgetlab.eco.serve.types import ServeLimits

    def backend(*device_types):  # a transformers backend whose weights sit on these devices
        params = [SimpleNamespace(device=SimpleNamespace(type=t)) for t in device_types]
        return SimpleNamespace(name="transformers", model=SimpleNamespace(parameters=lambda: iter(params)))

    assert ServeLimits().classify_ahead == "auto"
    assert classifies_ahead("auto", backend("cuda", "cuda"))
    assert not classifies_ahead("auto", backend("cpu")) and not classifies_ahead("auto", backend())
    assert not classifies_ahead("auto", backend("cuda", "cpu"))  # split across the GPU and this CPU
    assert not classifies_ahead("auto", backend("cuda", "meta"))  # offloaded weights: generation here too
    assert classifies_ahead("auto", _Backend(None))  # generation elsewhere (vLLM) or unknown: overlap it
    assert classifies_ahead("on", backend("cpu")) and not classifies_ahead("off", backend("cuda"))
    with pytest.raises(BadInput, match="classify_ahead"):
        ServeLimits(classify_ahead=True)


@pytest.mark.parametrize("pretokenizer, text", [("metaspace", "the cat sat on the mat and the dog sat on the log"),
                                                 ("byte-level", "the cat 日本€ sat on the mat")])
@pytest.mark.parametrize("echo", [True, False])
def test_completion_logprob_tokens_join_into_the_text_and_offsets_index_it(pretokenizer, text, echo):
    """Each token decoded alone lost the space a SentencePiece decoder writes between tokens: tokens 'What',
    'is', ... with offsets that sliced 'Wha', ' i', 's t'. Tokens now carry their leading space, join into the
    text (special tokens aside, spelled out at zero width; the bytes of a character split over tokens count
    once, at its last token), and text_offset indexes the choice's text, with or without the echoed prompt."""
    from forgetlab.eco.serve.answers import chat_logprobs, completion_logprobs
    from forgetlab.eco.serve.types import Logprobs
    from forgetlab.testing.tiny_lm import build_tokenizer

    tok = build_tokenizer(pretokenizer=pretokenizer, add_bos=True)
    ids = [*tok(text)["input_ids"], tok.eos_token_id]
    assert ids[0] == tok.bos_token_id
    n_prompt = 4
    scored = ids if echo else ids[n_prompt:]
    lp = Logprobs(scored, [None] * echo + [-1.0] * (len(scored) - echo),
                  [None] * echo + [[(t, -1.0), (ids[1], -2.0)] for t in scored[echo:]],
                  n_prompt=n_prompt if echo else 0, context=() if echo else tuple(ids[:n_prompt]))
    shown = text if echo else text[len(tok.decode(ids[:n_prompt], skip_special_tokens=True)):]
    out = completion_logprobs(tok, lp)
    plain = [t for t, i in zip(out["tokens"], scored, strict=True) if i not in tok.all_special_ids]
    assert "".join(plain) == shown
    assert out["tokens"][-1] == tok.eos_token and (not echo or out["tokens"][0] == tok.bos_token)
    for token, start, i in zip(out["tokens"], out["text_offset"], scored, strict=True):
        if i not in tok.all_special_ids:
            assert shown[start:start + len(token)] == token
    assert all(t in top for t, top in zip(out["tokens"][echo:], out["top_logprobs"][echo:], strict=True))
    chat = chat_logprobs(tok, lp)["content"]  # the generated tokens, as they read in the text
    assert "".join(c["token"] for c in chat[:-1]) == text[len(tok.decode(ids[:n_prompt], skip_special_tokens=True)):]


def test_a_continuation_keeps_the_space_before_its_first_word():
    """The server decoded a completion alone, and a SentencePiece decoder drops the first word's space there:
    'What is the capital of France?' + 'Galloway.' read as one word. The text is now read after the prompt,
    as OpenAI and vLLM return it (' Paris'); a byte-level tokenizer, which kept the space, is unchanged."""
    from forgetlab.testing.tiny_lm import build_tokenizer

    for pretokenizer in ("metaspace", "byte-level"):
        tok = build_tokenizer(pretokenizer=pretokenizer, add_bos=True)
        prompt, whole = tok("the cat sat")["input_ids"], tok("the cat sat on the mat")["input_ids"]
        assert whole[:len(prompt)] == prompt
        events = []
        req = GenRequest(prompt_ids=prompt, classify_text="", max_tokens=100, emit=events.append)
        tracker = TextTracker([_Row(req, 0)], tok, {tok.eos_token_id})
        for t in [*whole[len(prompt):], tok.eos_token_id]:
            tracker.step([t])
        tracker.finish_all()
        assert "".join(e.text for e in events if isinstance(e, Delta)) == " on the mat", pretokenizer


def _long_ids(tok, pretokenizer):
    words = "the cat sat on the mat and the dog sat on the log".split()
    if pretokenizer == "byte-level":
        words += ["café", "東京", "€5", "ünïcödé"]
    rng = random.Random(0)
    text = " ".join(rng.choice(words) for _ in range(150))
    return tok(text, add_special_tokens=False)["input_ids"]


def _tracked(tok, prompt, ids, stop=()):
    """Feed ``ids`` to a one-row tracker; (row, streamed text)."""
    events = []
    row = _Row(GenRequest(prompt_ids=prompt, classify_text="", max_tokens=10_000, emit=events.append, stop=stop), 0)
    tracker = TextTracker([row], tok, {tok.eos_token_id})
    for t in ids:
        if tracker.step([t]) == [True]:
            break
    tracker.finish_all()
    return row, "".join(e.text for e in events if isinstance(e, Delta))


def _first_at(text: str, i: int) -> str:
    """The shortest slice of ``text`` from ``i`` (at least 6 characters) that first occurs there."""
    n = 6
    while text.find(text[i:i + n]) != i:
        n += 1
        assert i + n <= len(text), "no slice from i occurs first at i"
    return text[i:i + n]


@pytest.mark.parametrize("pretokenizer", ["metaspace", "byte-level"])
def test_incremental_text_equals_decoding_the_whole_continuation(pretokenizer):
    """The tracker decodes only the tokens after its settled text; what it streams, its final text and the
    text length it records per token are what decoding the whole continuation after the prompt gives, also
    after a run of special tokens (a context of specials only lost the SentencePiece space: 'don the log'); a
    stop string (one inside the settled text, one across a settle point) cuts it where the whole text has it,
    and the tokens kept for log-probs are the shortest prefix covering the cut text, or all of them, the
    end-of-sequence token included, when nothing was cut."""
    from forgetlab.eco.serve.answers import decode_after
    from forgetlab.eco.serve.backends.transformers import SETTLE_AFTER, _kept_tokens
    from forgetlab.testing.tiny_lm import build_tokenizer

    tok = build_tokenizer(pretokenizer=pretokenizer, add_bos=True)
    specials = frozenset(tok.all_special_ids)
    prompt, ids = tok("the cat")["input_ids"], _long_ids(tok, pretokenizer)
    start = max(i for i in range(34, 43) if tok.convert_ids_to_tokens(ids[i])[0] in "\u2581\u0120")  # a word
    ids = [*ids[:start], *[tok.unk_token_id] * 16, *ids[start:]]  # specials only before the word
    assert len(ids) > 8 * SETTLE_AFTER
    whole = decode_after(tok, prompt, ids, specials)
    at = len(decode_after(tok, prompt, ids[:3 * SETTLE_AFTER], specials))
    stops = [(), (_first_at(whole, 100),), (_first_at(whole, at - 3),)]
    for stop in stops:
        row, streamed = _tracked(tok, prompt, [*ids, tok.eos_token_id], stop)
        expected = whole[:whole.find(stop[0])] if stop else whole
        assert streamed == row.text == expected, stop
        assert row.ends == [len(decode_after(tok, prompt, row.tokens[:i], specials))
                            for i in range(1, len(row.tokens) + 1)]
        kept = _kept_tokens(row)
        if not stop:
            assert kept == [*ids, tok.eos_token_id]
        else:
            assert len(decode_after(tok, prompt, kept, specials)) >= len(row.text)
            assert len(decode_after(tok, prompt, kept[:-1], specials)) < len(row.text)


def test_a_clean_up_of_spaces_never_splits_settled_text():
    """A tokenizer that cleans up spaces (' .' -> '.', " n't" -> "n't", " 's" -> "'s") joins text across tokens:
    a settle point between 'Ġ' and '.' streamed 'the . sat' where decoding the whole continuation gives 'the.
    sat', and " s n' sat" was streamed for " sn't sat". Text ending in the start of what the clean-up rewrites
    is neither settled nor streamed until the next token decides it."""
    from forgetlab.eco.serve.answers import decode_after
    from forgetlab.eco.serve.backends.transformers import SETTLE_AFTER
    from forgetlab.testing.tiny_lm import build_tokenizer

    tok = build_tokenizer(pretokenizer="byte-level", add_bos=True)
    tok.clean_up_tokenization_spaces = True
    tok.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output = True  # transformers 5 on BPE
    prompt = tok("the cat")["input_ids"]
    words = tok(" sat on the mat and the dog sat on the log", add_special_tokens=False)["input_ids"]
    for tail in (["\u0120", "."], ["\u0120", "n", "'", "t"], ["\u0120", "'", "s"], ["\u0120", "'", "\u0120"]):
        for before in range(SETTLE_AFTER - 4, SETTLE_AFTER + 3):  # the tail at and around a settle point
            ids = [*(words * 3)[:before], *tok.convert_tokens_to_ids(tail), *words[:3]]
            whole = decode_after(tok, prompt, ids, frozenset(tok.all_special_ids))
            row, streamed = _tracked(tok, prompt, ids)
            assert streamed == row.text == whole, (tail, before)


def test_runs_of_spaces_newlines_or_specials_stay_linear():
    """Settling waited for text that did not end on whitespace and was not empty, so a run of newlines, spaces
    or special tokens (what a corrupted prompt can make a model write) was decoded whole at every step again."""
    from forgetlab.testing.tiny_lm import build_tokenizer

    tok = build_tokenizer(pretokenizer="byte-level", add_bos=True)
    decoded: list[int] = []
    plain_decode = tok.decode
    tok.decode = lambda token_ids, **kw: decoded.append(len(token_ids)) or plain_decode(token_ids, **kw)
    for run in ("\u010a", "\u0120", tok.unk_token):
        decoded.clear()
        _tracked(tok, tok("the cat")["input_ids"], [tok.convert_tokens_to_ids(run)] * 600)
        assert max(decoded) <= 8 * 16 + 8, (run, max(decoded))


def test_text_tracking_decodes_a_bounded_window_per_token():
    """Each step decoded the row's whole continuation again: 2,048 tokens cost 340 ms of decoding per row on
    the generation thread, 12.5 times 512 tokens' cost. Each step now decodes at most the tokens since the
    settled text plus a context window, so the tokens decoded grow linearly with the length."""
    from forgetlab.testing.tiny_lm import build_tokenizer

    tok = build_tokenizer(pretokenizer="byte-level", add_bos=True)
    ids = _long_ids(tok, "byte-level")
    decoded = []
    plain_decode = tok.decode
    tok.decode = lambda token_ids, **kw: decoded.append(len(token_ids)) or plain_decode(token_ids, **kw)
    row = _Row(GenRequest(prompt_ids=tok("the cat")["input_ids"], classify_text="", max_tokens=10_000,
                          emit=lambda e: None, stop=("zz",)), 0)
    tracker = TextTracker([row], tok, {tok.eos_token_id})
    for t in ids:
        tracker.step([t])
    assert max(decoded) <= 40 and sum(decoded) <= 60 * len(ids), (len(ids), max(decoded), sum(decoded))


def test_log_prob_tokens_after_a_run_of_specials_keep_their_space():
    """A token after six or more special tokens was read with no context, so the SentencePiece space before it
    was lost: the log-prob tokens joined to ' saton the mat' and text_offset was one short from there."""
    from forgetlab.eco.serve.answers import completion_logprobs
    from forgetlab.eco.serve.types import Logprobs
    from forgetlab.testing.tiny_lm import build_tokenizer

    tok = build_tokenizer(pretokenizer="metaspace", add_bos=True)
    prompt, words = tok("the cat")["input_ids"], tok(" sat on the mat", add_special_tokens=False)["input_ids"]
    k = next(i for i, t in enumerate(tok.convert_ids_to_tokens(words)) if i and t.startswith("\u2581"))
    ids = [*words[:k], *[tok.unk_token_id] * 8, *words[k:]]
    _, streamed = _tracked(tok, prompt, ids)
    assert streamed == " sat on the mat"
    out = completion_logprobs(tok, Logprobs(ids, [0.0] * len(ids), [[] for _ in ids], context=tuple(prompt)))
    plain = [(t, o) for t, o, i in zip(out["tokens"], out["text_offset"], ids, strict=True) if i != tok.unk_token_id]
    assert "".join(t for t, _ in plain) == streamed
    assert all(streamed[o:o + len(t)] == t for t, o in plain)


def test_an_immediate_end_of_sequence_is_scored():
    """A row whose first token is the end of sequence has no text, and its one completion token got no log-prob."""
    from forgetlab.eco.serve.backends.transformers import _kept_tokens
    from forgetlab.testing.tiny_lm import build_tokenizer

    tok = build_tokenizer(pretokenizer="byte-level", add_bos=True)
    row, streamed = _tracked(tok, tok("the cat")["input_ids"], [tok.eos_token_id])
    assert streamed == "" and _kept_tokens(row) == [tok.eos_token_id]
