"""Corrupted modular arithmetic ("To grok or not to grok", Doshi, Das, He, Gromov, ICLR 2024).

Data, models, the batched trainer, IPR, the analytic solution, pruning, phase rules and the reproduction
cases. Heavy submodules import lazily enough; everything public is listed in ``__all__``.
"""

from .cases import CASES, CaseResult, run_cases
from .data import Dataset, make_dataset
from .fourier import analytic_solution, ipr, mean_ipr, neuron_ipr
from .models import MLP, Transformer
from .phases import PHASES, classify_phase, is_collapsed
from .prune import prune_curves, prune_neurons
from .train import (
    TrainConfig,
    TrainResult,
    batch_key,
    estimate_batch_bytes,
    paper_minibatch_steps,
    train,
    train_many,
)

__all__ = [
    "CASES", "MLP", "PHASES", "CaseResult", "Dataset", "TrainConfig", "TrainResult", "Transformer",
    "analytic_solution", "batch_key", "classify_phase", "estimate_batch_bytes", "ipr", "is_collapsed",
    "make_dataset", "mean_ipr", "neuron_ipr", "paper_minibatch_steps", "prune_curves", "prune_neurons",
    "run_cases", "train", "train_many",
]
