"""JSONL prompt loading: fields, blank lines, and one clear error per broken input (naming the line)."""

from __future__ import annotations

import pytest

from forgetlab.eco.classify.prompts import load_prompts
from forgetlab.errors import BadInput, ForgetlabError


def _write(tmp_path, text, name="p.jsonl"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_reads_fields_and_skips_blank_lines(tmp_path):
    p = _write(tmp_path, '{"question": "Who is A?", "answer": "x"}\n\n{"question": "Where is B?"}\n')
    assert load_prompts(p) == ["Who is A?", "Where is B?"]
    p2 = _write(tmp_path, '{"text": "t1", "prompt": "p1"}\n{"text": "t2", "prompt": "p2"}\n', "b.jsonl")
    assert load_prompts(p2) == ["p1", "p2"]  # auto: prompt before text before question
    assert load_prompts(p2, field="text") == ["t1", "t2"]


@pytest.mark.parametrize(("text", "match"), [
    ("", "empty file"),
    ("\n  \n", "empty file"),
    ('{"prompt": "a"}\n{"prompt": "b"\n', "line 2: not valid JSON"),
    ('{"prompt": "a"}\n{"text": "b"}\n', "line 2: missing field 'prompt'"),
    ('{"answer": "a"}\n', "line 1: missing field"),
    ('{"prompt": "a"}\n["prompt"]\n', "line 2: expected a JSON object"),
    ('{"prompt": "a"}\n\n{"prompt": 3}\n', "line 3: field 'prompt' must be a non-empty string"),
    ('{"prompt": "  "}\n', "line 1: field 'prompt' must be a non-empty string"),
])
def test_broken_files(tmp_path, text, match):
    with pytest.raises(ForgetlabError, match=match):
        load_prompts(_write(tmp_path, text))


def test_bad_field_and_missing_file(tmp_path):
    with pytest.raises(BadInput, match=r"field.*one of prompt, question, text"):
        load_prompts(_write(tmp_path, '{"prompt": "a"}\n'), field="body")
    with pytest.raises(BadInput, match="an existing JSONL file"):
        load_prompts(tmp_path / "nope.jsonl")
