"""How long a sweep will take on this machine, measured before it starts.

For every batch shape of the sweep (runs sharing the trainer's ``batch_key``) a probe trains the shape's first
planned batch once untimed (one-off costs), then for ``s1`` and ``s2`` steps: the difference gives the seconds
of one batch step on this machine now, the rest the batch's fixed cost (data, initialization, the first and
last evaluation); with kept histories a third probe logs every step to cost one evaluation. Each planned batch is then costed as
``fixed + steps x step + evaluations x evaluation``, scaled by its size relative to the probe. The probe runs
in this process with the current torch thread count, so the estimate is for one worker; ``workers`` divides
it when the cores are free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .batching import time_training
from .run import available_memory_bytes, plan_batches
from .spec import DEFAULT_TRAINER, SweepSpec, load_trainer, make_configs, run_id


@dataclass(frozen=True)
class ShapeCost:
    """The measured cost of one batch shape: seconds of one step and of the fixed part of a probe batch of
    ``probe_runs`` runs, one evaluation, and the shape's planned work in seconds."""

    shape: str
    runs: int
    probe_runs: int
    step_seconds: float
    fixed_seconds: float
    eval_seconds: float
    seconds: float


@dataclass(frozen=True)
class SweepEstimate:
    """Estimated seconds of a sweep's remaining runs for one worker, per batch shape."""

    n_runs: int
    seconds: float
    shapes: list[ShapeCost]
    probe_seconds: float
    batch_runs: int = 0  # the most runs per batch the estimate planned with (the spec's max_batch_runs)
    measured_batching: bool = False  # the sweep measures its batch size first, so its batches may be smaller

    def describe(self, workers: int = 1) -> str:
        """One line: runs, estimated wall time with ``workers`` workers on free cores, and the probe's cost."""
        wall = self.seconds / max(1, workers)
        plan = (f"; planned in batches of up to {self.batch_runs} runs, where the sweep measures its own batch size "
                "first and may batch fewer" if self.measured_batching else "")
        return (f"{self.n_runs} runs, estimated {_hms(wall)} with {workers} worker(s) on free cores "
                f"({_hms(self.seconds)} of single-worker time; measured by a {self.probe_seconds:.0f} s probe "
                f"of {len(self.shapes)} batch shape(s){plan})")


def _hms(seconds: float) -> str:
    h, rem = divmod(round(seconds), 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min {rem % 60:02d} s"


def probe_steps_total(steps: tuple[int, int], history: bool) -> int:
    """The steps :func:`_probe` trains: ``s1`` untimed, ``s1`` and ``s2`` timed, ``s1`` more with history."""
    s1, s2 = steps
    return 2 * s1 + s2 + (s1 if history else 0)


def _probe(trainer: Any, configs: list[Any], steps: tuple[int, int], history: bool) -> tuple[float, float, float]:
    """(seconds per batch step, fixed seconds, seconds per evaluation) of training ``configs`` as one batch."""
    s1, s2 = steps
    # untimed first: the first batch of a shape pays one-off costs (allocator growth, kernel selection, ~1 s)
    # that made the s1-step probe slower than the s2-step one, so the step cost came out as zero
    time_training(trainer, configs, s1, s1, False)
    t1 = time_training(trainer, configs, s1, s1, False)
    t2 = time_training(trainer, configs, s2, s2, False)
    step = max(0.0, (t2 - t1) / (s2 - s1))
    fixed = max(0.0, t1 - s1 * step)
    evaluation = max(0.0, (time_training(trainer, configs, s1, 1, True) - t1) / s1) if history else 0.0
    return step, fixed, evaluation


def estimate_sweep(spec: SweepSpec, *, trainer: str = DEFAULT_TRAINER, finished: set[str] | frozenset = frozenset(),
                   probe_steps: tuple[int, int] = (2, 10),
                   say: Callable[[str], None] = lambda _line: None) -> SweepEstimate:
    """Estimate the single-worker seconds of the runs of ``spec`` not in ``finished`` (run ids); ``say`` gets a
    line before each shape's probe (at p = 97 one probe takes minutes)."""
    mod = load_trainer(trainer)
    configs = [c for c in make_configs(spec, mod) if run_id(c) not in finished]
    budget = int(spec.max_memory_gb * 2**30) if spec.max_memory_gb else available_memory_bytes() // 2
    jobs = plan_batches(spec, configs, mod, trainer, budget) if configs else []
    by_shape: dict[Any, list[list[Any]]] = {}
    for job in jobs:
        cfgs = [mod.TrainConfig(**c) for c in job.configs]
        by_shape.setdefault(mod.batch_key(cfgs[0]), []).append(cfgs)
    t0 = time.perf_counter()
    shapes = []
    for k, (key, batches) in enumerate(by_shape.items(), 1):
        probe = batches[0]
        say(f"probing shape {k} of {len(by_shape)}: a batch of {len(probe)} runs of p={probe[0].p}, "
            f"{probe_steps_total(probe_steps, spec.keep_history)} steps")
        step, fixed, evaluation = _probe(mod, probe, probe_steps, spec.keep_history)
        seconds = 0.0
        for batch in batches:
            c = batch[0]
            evals = c.steps // c.log_every if spec.keep_history else 0
            seconds += (fixed + c.steps * step + evals * evaluation) * len(batch) / len(probe)
        shapes.append(ShapeCost(str(key), sum(map(len, batches)), len(probe), step, fixed, evaluation, seconds))
    return SweepEstimate(len(configs), sum(s.seconds for s in shapes), shapes, time.perf_counter() - t0,
                         batch_runs=max((len(b) for bs in by_shape.values() for b in bs), default=0),
                         measured_batching=spec.batching == "measured" and spec.max_batch_runs > 1)
