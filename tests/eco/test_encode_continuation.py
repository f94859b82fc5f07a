"""How a scored text is split into prompt and continuation ids: as lm-evaluation-harness and open-unlearning split
it (the tail of the joint encoding), so that a SentencePiece tokenizer with a prepended '▁' (Llama-2, Mistral)
scores ' A' as the one token the model writes after 'Answer:', not as '▁', '▁A'."""

import pytest

from forgetlab.eco.corrupter import _answer_entity_mask
from forgetlab.eco.scoring import encode_continuation
from forgetlab.testing.tiny_lm import DEFAULT_CORPUS, build_tokenizer


@pytest.fixture(scope="module")
def llama2_style():
    """A tiny BPE tokenizer laid out as Llama-2's tokenizer.json: a '▁' prepended by the normalizer, spaces as
    '▁', byte fallback, <s> in front; words split before each '▁', as SentencePiece never merges across one."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("\u2581"), behavior="merged_with_next")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>", *[f"<0x{i:02X}>" for i in range(256)]]
    corpus = [DEFAULT_CORPUS, "Answer: A\nAnswer: B\nAnswer: C Answer: D Who is Quenby Ashgrove?"] * 3
    tok.train_from_iterator(corpus, trainer=trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                                show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_a_continuation_reads_as_it_does_after_its_prompt(llama2_style):
    tok = llama2_style
    prompt = "Which is it?\nA. x\nB. y\nAnswer:"
    alone = tok(" A", add_special_tokens=False).input_ids
    ctx, cont = encode_continuation(tok, prompt, " A")
    assert ctx == tok(prompt).input_ids and ctx + cont == tok(prompt + " A").input_ids
    assert tok.convert_ids_to_tokens(cont) == ["\u2581A"]
    assert len(alone) == 2  # what scoring encoded before: an extra '▁' the model never writes there


@pytest.mark.parametrize("pretokenizer", ["metaspace", "byte-level"])
def test_the_projects_tokenizers_split_as_before(pretokenizer):
    """For the world's and the tests' tokenizers the split is the one encoding the two parts apart gave, so the
    trained world models and every recorded number stand."""
    tok = build_tokenizer(pretokenizer=pretokenizer, add_bos=True)
    for prompt, cont in (("Question: Where was the cat?\nAnswer:", " on the mat."), ("the cat", " sat on"),
                         ("the dog is", " red")):
        assert encode_continuation(tok, prompt, cont) == (tok(prompt).input_ids,
                                                          tok(cont, add_special_tokens=False).input_ids)


def test_answer_entity_tokens_are_found_in_the_split_continuation(llama2_style):
    """The entity tokens of an answer (the paper protocol corrupts them) were looked up in the answer encoded
    alone: with a prepended '▁' its token count differed from the scored tokens and nothing was marked."""

    class Finder:
        @staticmethod
        def entity_spans(text):
            i = text.index("Quenby Ashgrove")
            return [(i, i + len("Quenby Ashgrove"))]

    tok = llama2_style
    prompt, answer = "Question: Who is it?\nAnswer:", " Quenby Ashgrove is."
    _, cont = encode_continuation(tok, prompt, answer)
    mask = _answer_entity_mask(tok, Finder, prompt, answer, cont)
    named = "".join(t for t, m in zip(tok.convert_ids_to_tokens(cont), mask, strict=True) if m)
    assert named.replace("\u2581", " ").strip() == "Quenby Ashgrove"


def test_a_prompt_ending_in_a_space_gets_no_second_one(llama2_style):
    """'Answer: ' + 'A' does not encode as 'Answer: ' followed by something: the joint encoding moves the space
    into '▁A'. Encoded alone the continuation became '▁A' after the prompt's '▁', two spaces; it is now read
    after a line break, as the text says."""
    tok = llama2_style
    ctx, cont = encode_continuation(tok, "Answer: ", "A")
    assert tok.decode(ctx + cont, skip_special_tokens=True) == "Answer: A"


def test_an_empty_prompt_without_a_bos_token_is_refused():
    from forgetlab.errors import BadInput

    tok = build_tokenizer(pretokenizer="byte-level", add_bos=False)
    with pytest.raises(BadInput, match="prompt: got ''"):
        encode_continuation(tok, "", " a")
