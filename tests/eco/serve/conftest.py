"""Fixtures for the serving tests: a saved tiny EcoGuard, loaded back, and the base model it guards."""

from __future__ import annotations

import pytest
from serve_helpers import save_tiny_guard

from forgetlab.eco.base_model import load_base_model
from forgetlab.eco.guard import EcoGuard


@pytest.fixture(scope="session")
def guard_dirs(tmp_path_factory):
    """(base model folder, guard folder)."""
    return save_tiny_guard(tmp_path_factory.mktemp("eco_serve"))


@pytest.fixture(scope="session")
def guard(guard_dirs):
    return EcoGuard.from_pretrained(guard_dirs[1])


@pytest.fixture(scope="session")
def base(guard_dirs):
    """The unguarded base model and its tokenizer, loaded separately from the guard's copy."""
    return load_base_model(guard_dirs[0])


@pytest.fixture(scope="session")
def tiny_model(base):
    return base[0]


@pytest.fixture(scope="session")
def tiny_tokenizer(base):
    return base[1]
