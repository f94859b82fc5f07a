"""Grok-lab tests: tiny sizes, one thread (small tensors are slower with threads on a shared CPU)."""

import torch

torch.set_num_threads(1)
