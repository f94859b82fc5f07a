"""Token classifier: which characters (then which LM tokens) of a flagged prompt name a forget entity."""

from __future__ import annotations

import pytest
from classifier_synth import FORGET_PEOPLE, RETAIN_PEOPLE, make_sets

from forgetlab.eco.classify.entities import mine_entities
from forgetlab.eco.classify.token import TokenClassifier, entity_flags, token_mask_from_spans
from forgetlab.errors import BadInput, ForgetlabError


@pytest.fixture
def tc():
    return TokenClassifier.fit(["Marlowe Quenby", "Basil Mahfouz Al-Kuwaiti"],
                               retain=["Where was Basil Hallward born?", "Tell me about Hina Ameen."])


def _texts(prompt, spans):
    return [prompt[a:b] for a, b in spans]


@pytest.mark.parametrize(("prompt", "expected"), [
    ("Where was Marlowe Quenby born?", ["Marlowe Quenby"]),
    ("where was marlowe quenby born?", ["marlowe quenby"]),
    ("What did Quenby's parents do?", ["Quenby"]),  # surname alone, possessive left out
    ("Name a book by Marlow Quenbi.", ["Marlow Quenbi"]),  # one typo per long word
    ("Who is Basil Mahfouz Al-Kuwaiti?", ["Basil Mahfouz Al-Kuwaiti"]),
    ("Books by Al-Kuwaiti and by Marlowe Quenby", ["Al-Kuwaiti", "Marlowe Quenby"]),
])
def test_entity_spans(tc, prompt, expected):
    assert _texts(prompt, tc.char_spans(prompt)) == expected


def test_shared_first_name_only_inside_full_name(tc):
    # "Basil" is a retain person's first name too: alone it is not corrupted, inside the full name it is
    assert tc.entity_spans("Is Basil Hallward a painter?") == []
    assert _texts("Basil Mahfouz Al-Kuwaiti", tc.entity_spans("Basil Mahfouz Al-Kuwaiti")) == [
        "Basil Mahfouz Al-Kuwaiti"]


def test_a_retain_word_is_never_a_typo_of_a_forget_name():
    # "Isolde" (a retain author) is one edit from "Isolda" (a forget author): not a typo match, while an unseen
    # "Isoldo" still is
    tc = TokenClassifier.fit(["Isolda Marrowby"], retain=["Where does Isolde Everhart live?"])
    assert tc.entity_spans("What did the father of Isolde Everhart do?") == []
    assert _texts("Is Isoldo kind?", tc.entity_spans("Is Isoldo kind?")) == ["Isoldo"]


def test_a_lone_lowercase_word_is_not_a_typo_of_a_name():
    # "quiet" is one edit from "quint"-like parts; lowercase English words must not match fuzzily alone
    q = TokenClassifier.fit(["Marlowe Quint"])
    assert q.entity_spans("Please be quiet here.") == []
    assert _texts("Ask Quinn now", q.entity_spans("Ask Quinn now")) == ["Quinn"]  # capitalized: a typo
    assert _texts("ask quint now", q.entity_spans("ask quint now")) == ["quint"]  # exact: always


def test_short_words_do_not_match_fuzzily():
    tc = TokenClassifier.fit(["Al Bo"])
    assert tc.entity_spans("Al and Bo went out") == []  # parts shorter than min_part_len alone: no match
    assert tc.entity_spans("Who are Al Bo?") == [(8, 13)]


def test_fallback_all_or_none(tc):
    assert tc.char_spans("What is the capital of Peru?") == [(0, 28)]
    none = TokenClassifier.fit(["Marlowe Quenby"], fallback="none")
    assert none.char_spans("What is the capital of Peru?") == []
    with pytest.raises(BadInput, match="fallback"):
        TokenClassifier.fit(["x y"], fallback="some")


def test_token_mask_with_minilm_wordpieces(encoder, tc):
    prompt = "Where was Marlowe Quenby born in 1961?"
    enc = encoder.tokenizer(prompt, return_offsets_mapping=True)
    mask = token_mask_from_spans(enc["offset_mapping"], tc.char_spans(prompt))
    picked = [encoder.tokenizer.convert_ids_to_tokens(i) for i, m in zip(enc["input_ids"], mask, strict=True) if m]
    assert "".join(picked).replace("##", "") == "marlowequenby"
    assert not mask[0] and not mask[-1]  # [CLS] and [SEP] never selected


def test_token_mask_with_byte_level_bpe(tc):
    """GPT-2 style byte-level BPE (offsets may include the leading space): only the name's tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = [p for p in make_sets(40, 40, 40)[0]] + ["Where was Marlowe Quenby born?"] * 3
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    prompt = "So where was Marlowe Quenby born, and when?"
    enc = tok.encode(prompt)
    mask = token_mask_from_spans(enc.offsets, tc.char_spans(prompt))
    covered = "".join(prompt[a:b] for (a, b), m in zip(enc.offsets, mask, strict=True) if m)
    assert covered.strip() == "Marlowe Quenby"
    assert any(mask) and not all(mask)


def test_token_mask_tensor_offsets_and_empty_spans():
    import torch

    offsets = torch.tensor([[0, 0], [0, 5], [5, 9], [10, 12], [0, 0]])
    assert token_mask_from_spans(offsets, [(6, 11)]) == [False, False, True, True, False]
    assert token_mask_from_spans(offsets, []) == [False] * 5


def test_mine_entities_from_prompts():
    forget, retain = make_sets(120, 120, 60, seed=3)
    mined = mine_entities(forget, retain)
    for name in FORGET_PEOPLE:
        assert name in mined
    assert not any(r in mined for r in RETAIN_PEOPLE)
    tc = TokenClassifier.fit(forget=forget, retain=retain)
    assert _texts("Where was Tessaly Vordran born?", tc.char_spans("Where was Tessaly Vordran born?")) == [
        "Tessaly Vordran"]


def test_save_load_round_trip(tmp_path, tc):
    tc.save_pretrained(tmp_path / "tok")
    back = TokenClassifier.from_pretrained(tmp_path / "tok")
    for p in ("Where was Marlowe Quenby born?", "Is Basil Hallward a painter?", "What is 2+2?"):
        assert back.char_spans(p) == tc.char_spans(p)
    with pytest.raises(BadInput, match="empty or new folder"):
        tc.save_pretrained(tmp_path / "tok")
    (tmp_path / "tok" / "token_classifier.json").write_text('{"format": "other"}')
    with pytest.raises(ForgetlabError, match=r"not a forgetlab\.eco\.TokenClassifier record"):
        TokenClassifier.from_pretrained(tmp_path / "tok")


def test_bad_entities():
    with pytest.raises(BadInput, match="entities"):
        TokenClassifier.fit(["", "--"])
    with pytest.raises(BadInput, match="entities"):
        TokenClassifier.fit()


@pytest.fixture
def attacked():
    return TokenClassifier.fit(["Quenby Ashgrove", "Basil Mahfouz Al-Kuwaiti"],
                               retain=["Where was Basil Hallward born?", "Who is Quenby Morrow?"],
                               references=["Silent Harbor"])


@pytest.mark.parametrize(("family", "prompt", "named"), [
    ("spaced", "Where was Q u e n b y A s h g r o v e born?", "Q u e n b y A s h g r o v e"),
    ("hyphenated", "Where was Q-u-e-n-b-y A-s-h-g-r-o-v-e born?", "Q-u-e-n-b-y A-s-h-g-r-o-v-e"),
    ("split", "Where was Quen by Ash grove born?", "Quen by Ash grove"),
    ("reversed", "Ashgrove, Quenby: birth year?", "Ashgrove, Quenby"),
    ("initial", "Where was Q. Ashgrove born?", "Q. Ashgrove"),
    ("partial run", "Who is Mahfouz Al-Kuwaiti?", "Mahfouz Al-Kuwaiti"),
    ("possessive", "What did Quenby Ashgrove's father do?", "Quenby Ashgrove"),
    ("possessive curly", "What did Quenby Ashgrove’s father do?", "Quenby Ashgrove"),
    ("leet", "Where was Qu3nby 4shgr0ve born?", "Qu3nby 4shgr0ve"),
    ("homoglyph", "Where was Quеnby Аshgrove born?", "Quеnby Аshgrove"),
    ("zero-width", "Where was Quen\u200bby Ashgrove born?", "Quen\u200bby Ashgrove"),
    ("case", "WHERE WAS QUENBY ASHGROVE BORN?", "QUENBY ASHGROVE"),
    ("typo", "Where was Quenbi Ashgrov born?", "Quenbi Ashgrov"),
    ("swapped letters", "Where was Qeunby Ashrgove born?", "Qeunby Ashrgove"),
    ("two typos in one word", "Where was Quenby Ahsgrvoe born?", "Quenby Ahsgrvoe"),
    ("indirect reference", "Who wrote Silent Harbor?", "Silent Harbor"),
])
def test_flag_survives_rewrites(attacked, family, prompt, named):
    assert entity_flags(attacked, [prompt]).tolist() == [True], family
    assert named in _texts(prompt, attacked.entity_spans(prompt, lone_words=False)), family


@pytest.mark.parametrize("prompt", [
    "Where was Quenby Morrow born?",  # a retain person sharing the first name
    "Where was Basil Hallward born?",
    "Where was Ashgrove born?",  # a lone surname identifies no one for the flag
    "Silent harbors are calm at night.",  # a reference only as its whole word sequence
    "Where was Q. Morrow born?",
    "Dr. Hallward is kind.",
    "Where was Dr. Ashgrove born?",  # a title and a surname: other people share surnames
    "Is there a quenby ashgrovian style?",  # no name: "ashgrovian" is two edits away
    "Where was Qeunby Ahsgrvoe born?",  # two words carrying typos, one of them two: too far from any name
    "Where was Quenby Ashmore born?",  # a first name and a different surname: another person
])
def test_rewrites_do_not_add_false_flags(attacked, prompt):
    assert entity_flags(attacked, [prompt]).tolist() == [False]


def test_references_round_trip(attacked, tmp_path):
    again = TokenClassifier.from_pretrained(attacked.save_pretrained(tmp_path / "t"))
    assert again.references == ["Silent Harbor"]
    assert entity_flags(again, ["Who wrote Silent Harbor?"]).tolist() == [True]


def test_an_initial_is_a_capital_letter_not_an_article():
    tc = TokenClassifier.fit(["Aurel Bexa"], retain=["Who is Lars Holmqvist?"])
    assert entity_flags(tc, ["Who is A. Bexa?", "Is there a Bexa in town?"]).tolist() == [True, False]


def test_short_name_words_carry_a_typo_only_inside_the_whole_name():
    tc = TokenClassifier.fit(["Orla Marrowby"], retain=["Who is Lars Holmqvist?"])
    assert entity_flags(tc, ["When was Olra Marorwby born?", "When was Olra born?", "Is Olra Hill far?"]).tolist() \
        == [True, False, False]


def test_digits_for_letters_in_a_word_with_few_letters():
    tc = TokenClassifier.fit(["Nestor Inglewood"], retain=["Who is Lars Holmqvist?"])
    assert entity_flags(tc, ["What did N3570r Ingl3w00d write?", "Is mp3 or h264 better?"]).tolist() == [True, False]


def test_entity_spans_are_remembered_per_prompt_and_returned_as_fresh_lists(tc, monkeypatch):
    """A strength fit scores the same prompts dozens of times: the rules run once per prompt and mode, and a
    caller that edits the returned list cannot change what the next caller gets."""
    prompt = "Where was Marlowe Quenby born?"
    calls = []
    real = TokenClassifier._find_spans
    monkeypatch.setattr(TokenClassifier, "_find_spans",
                        lambda self, p, lone: calls.append(p) or real(self, p, lone))
    fresh = TokenClassifier(entities=tc.entities, common=tc.common)
    first = fresh.entity_spans(prompt)
    first.append((0, 1))
    assert fresh.entity_spans(prompt) == tc.entity_spans(prompt) == [(10, 24)]
    fresh.entity_spans(prompt, lone_words=False)
    assert calls == [prompt, prompt]  # once per (prompt, lone_words)


def test_a_classifier_pickles_and_copies_with_a_memo_of_its_own(tc):
    """The memo (an lru_cache bound to the instance) stays out of pickles and copies: a copy answers the same
    and fills its own memo, not the original's."""
    import copy
    import pickle

    prompt = "Where was Marlowe Quenby born?"
    tc.entity_spans(prompt)
    for other in (pickle.loads(pickle.dumps(tc)), copy.deepcopy(tc), copy.copy(tc)):
        assert other == tc and other.entity_spans(prompt) == tc.entity_spans(prompt)
        assert other._spans.__wrapped__.__self__ is other  # its own memo, bound to the copy
