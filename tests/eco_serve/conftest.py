"""Fixtures for the serving tests: a tiny random Llama with a chat template and a guard over it."""

from __future__ import annotations

import pytest
from serve_helpers import CHAT_TEMPLATE, KeywordGuard

from forgetlab.eco.models import build_tiny_lm, build_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer():
    tok = build_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    return tok


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    return build_tiny_lm("llama", tiny_tokenizer, seed=0, max_positions=512)


@pytest.fixture(scope="session")
def guard(tiny_model, tiny_tokenizer):
    return KeywordGuard(tiny_model, tiny_tokenizer)
