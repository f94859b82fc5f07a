"""A tiny stand-in trainer with the contract of forgetlab.grok.train (for store/backend tests only).

Results are a deterministic function of the config; ``steps`` milliseconds of sleep per batch stand in for work.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass

import torch

from forgetlab.errors import check_range
from forgetlab.grok.phases import classify_phase


@dataclass(frozen=True)
class TrainConfig:
    p: int = 7
    op: str = "add"
    alpha: float = 0.5
    xi: float = 0.2
    width: int = 8
    wd: float = 0.0
    lr: float = 0.01
    batch_size: int = 0
    steps: int = 10
    seed: int = 0
    log_every: int = 5

    def validate(self) -> None:
        check_range("alpha", self.alpha, 0.0, 1.0, lo_open=True)
        check_range("xi", self.xi, 0.0, 1.0)


@dataclass
class TrainResult:
    config: TrainConfig
    summary: dict
    history: list
    state: dict
    neuron_ipr: torch.Tensor


def batch_key(config: TrainConfig) -> tuple:
    return (config.p, config.width)


def estimate_batch_bytes(configs) -> int:
    return sum(4 * c.p * c.p * c.width for c in configs)


def _one(c: TrainConfig, keep_history: bool) -> TrainResult:
    seed = int(hashlib.sha256(repr(sorted(asdict(c).items())).encode()).hexdigest()[:8], 16)
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(4, generator=g, dtype=torch.float64)
    train, test = float(u[0]), float(u[1])
    summary = {"train_acc": train, "test_acc": test, "corrupted_acc": float(u[2]), "clean_acc": float(u[3]),
               "inversion_acc": 1 - float(u[2]), "mean_ipr": 0.5, "weight_norm": 1.0 + c.wd,
               "phase": classify_phase(train, test, c.xi), "steps": c.steps, "seconds": 0.001,
               "n_corrupted": 3, "n_corrupted_unchanged": 0}
    history = [{"step": s, "train_acc": train * s / c.steps, "test_acc": test * s / c.steps}
               for s in range(0, c.steps + 1, c.log_every)] if keep_history else []
    state = {"U": torch.randn(c.width, c.p, generator=g)}
    return TrainResult(c, summary, history, state, torch.rand(c.width, generator=g))


def train_many(configs, *, keep_history=True, progress=False, callback=None):
    time.sleep(max(c.steps for c in configs) * 1e-3)
    return [_one(c, keep_history) for c in configs]
