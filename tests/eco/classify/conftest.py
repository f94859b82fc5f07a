"""Session fixtures: MiniLM loaded once, one synthetic data set, one fitted classifier shared by the tests."""

from __future__ import annotations

import pytest
from classifier_synth import make_sets


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """MiniLM on one thread here: on the shared 2-core box, 2 threads ran 3x slower (idle OpenMP threads spin
    while the other is descheduled; docs/benchmarks/classifier.md). Restored after each module."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def encoder():
    from forgetlab.eco.classify.encoder import Encoder

    return Encoder.load()


@pytest.fixture(scope="session")
def sets():
    """(forget, retain): 120 forget prompts, 240 retain prompts (120 about other people, 120 general)."""
    return make_sets(n_forget=120, n_retain_people=120, n_general=120, seed=0)


@pytest.fixture(scope="session")
def clf(encoder, sets):
    """Fitted at fpr=0.05: 48 retain prompts calibrate, 48 retain + 24 forget are the measured test split."""
    from forgetlab.eco.classify.prompt import PromptClassifier

    forget, retain = sets
    return PromptClassifier.fit(forget, retain, fpr=0.05, seed=0, first_stage_miss=0.05, encoder=encoder)
