"""Grok-lab tests: tiny sizes, one thread (small tensors are slower with threads on a shared CPU).

The thread count is restored after each test so other folders' tests in the same process are unaffected.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
