"""ECO tests: tiny models run fastest on one thread (the CPU is shared); restored after the package."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


COLORS = ("red", "blue", "green", "gold")
_SYL = ("ka", "lo", "mi", "nu", "pe", "ri", "so", "tu", "va", "ze")
NAMES = [a + b + c for a in _SYL[:4] for b in _SYL[4:8] for c in _SYL[6:10]][:64]
FACTS = {n: COLORS[i % 4] for i, n in enumerate(NAMES)}  # balanced answers: a constant guess scores 1/4


@pytest.fixture(scope="session")
def color_lm():
    """A tiny Llama trained (seconds) to know which color each of 64 made-up people likes.

    Returns (model, tokenizer, items) with items the 64 multiple-choice questions ``"<name> likes"`` ->
    one of 4 colors.
    """
    from forgetlab.eco.mc import MCItem
    from forgetlab.testing.tiny_lm import build_tiny_lm, build_tokenizer, teach

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    texts = [f"{n} likes {c}" for n, c in FACTS.items()]
    tok = build_tokenizer(texts, vocab_size=300)
    model = build_tiny_lm("llama", tok, hidden=32, layers=1, heads=4, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        teach(model, tok, texts, steps=50, lr=2e-2, batch_size=64, seed=0)
    torch.set_num_threads(before)
    items = [MCItem(f"{n} likes", tuple(" " + c for c in COLORS), COLORS.index(c)) for n, c in FACTS.items()]
    return model, tok, items
