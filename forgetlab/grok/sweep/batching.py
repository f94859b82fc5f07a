"""How many runs one batch should hold on this machine, chosen by a measurement before a sweep trains.

Batching runs into one program pays where one run's step is too small to keep the cores busy, and costs where
the runs' working set outgrows the caches: on a 2-core AMD EPYC (AVX2) a batch of 8 p=97 runs trained at 0.66x the
throughput of the same runs one at a time, and a batch of 32 p=31 runs at 1.03x (docs/benchmarks.md, issue 19),
while a Xeon with AVX-512 measured 2.3x at p=31. So the sweep measures: it trains the sweep's own first runs in
batches of 1, 2, 4, ... up to the spec's ``max_batch_runs`` for a few steps each, with the thread count its
workers will have, and keeps the size with the fewest seconds per run-step. A batch's numbers do not depend on
its size beyond float summation order, so the choice moves time, not results.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

PROBE_SECONDS = 0.2
"""A probe's longer training runs more steps until it takes this much longer than the one-step training, so that
the difference (the steps' own time) stands above timer and scheduler noise."""
MAX_PROBE_STEPS = 256

MIN_SWEEP_SECONDS = 15.0
"""A sweep whose runs would take less than this one at a time is not probed beyond one run per batch: larger
batches could not win back their probes (measured: on a 7-second sweep the probe alone made it 0.73-0.90x)."""

MIN_PROBE_RUN_STEPS = 10_000
"""A sweep of fewer run-steps (runs x steps) is planned one run per batch without a probe: it is over in seconds
to minutes, and a probe of a second or more would cost more than batching could win (measured: 0.76x one at a
time for 8 p=97 runs of 20 steps with the probe, 1.0x without)."""

WORSE = 1.15
"""Stop trying larger batches once one costs this much more per run-step than the best so far."""


def candidate_sizes(cap: int, n_runs: int) -> list[int]:
    """1, 2, 4, ... up to ``min(cap, n_runs)``, that bound included."""
    top = max(1, min(cap, n_runs))
    sizes = [1]
    while sizes[-1] * 2 <= top:
        sizes.append(sizes[-1] * 2)
    return sizes if sizes[-1] == top else [*sizes, top]


def measure_batch_runs(trainer: Any, configs: Sequence[Any], cap: int, threads: int,
                       memory_budget: int) -> tuple[int, dict[int, float]]:
    """``(size, {size: seconds per run-step})``: the batch size with the fewest seconds per run-step for
    ``configs`` (runs of one batch shape; a run-step of the first run, scaled by the trainer's ``run_work`` where
    it has one, so that a batch padding small runs to its largest pays for the padding) on this machine with ``threads`` torch threads, tried up to ``cap`` and
    to the largest batch whose estimated memory fits ``memory_budget``; one run per batch without a probe below
    :data:`MIN_PROBE_RUN_STEPS` run-steps, and without trying more than one when the runs would take less than
    :data:`MIN_SWEEP_SECONDS` one at a time."""
    import torch

    if sum(c.steps for c in configs) < MIN_PROBE_RUN_STEPS:
        return 1, {}
    work = getattr(trainer, "run_work", lambda _c: 1)  # runs of different sizes: time per unit of their work
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    per_run: dict[int, float] = {}
    try:
        _step_seconds(trainer, list(configs[:1]), warm_up=True)  # first-call costs (lazy imports, allocator)
        for k in candidate_sizes(cap, len(configs)):
            if k > 1 and trainer.estimate_batch_bytes(list(configs[:k])) > memory_budget:
                break
            batch = list(configs[:k])
            per_run[k] = _step_seconds(trainer, batch) / sum(work(c) for c in batch) * work(configs[0])
            if k == 1 and per_run[1] * sum(c.steps for c in configs) < MIN_SWEEP_SECONDS:
                break
            if per_run[k] > WORSE * min(per_run.values()):
                break
    finally:
        torch.set_num_threads(before)
    return min(per_run, key=per_run.get), per_run


def _step_seconds(trainer: Any, configs: list[Any], warm_up: bool = False) -> float:
    """Seconds of one training step of ``configs`` as one batch: trainings of 1 and of ``s`` steps (no logging in
    between), ``s`` doubled until their difference exceeds :data:`PROBE_SECONDS` (``warm_up``: one 1-step
    training only, its time discarded)."""
    one = time_training(trainer, configs, 1, 1, False)
    if warm_up:
        return one
    steps = 8
    while True:
        longer = time_training(trainer, configs, steps, steps, False)
        if longer - one >= PROBE_SECONDS or steps >= MAX_PROBE_STEPS:
            return max(longer - one, 1e-9) / (steps - 1)
        steps *= 2


def time_training(trainer: Any, configs: list[Any], steps: int, log_every: int, history: bool) -> float:
    """Seconds to train ``configs`` as one batch for ``steps`` steps, logging every ``log_every``."""
    probe = [dataclasses.replace(c, steps=steps, log_every=log_every) for c in configs]
    t0 = time.perf_counter()
    trainer.train_many(probe, keep_history=history)
    return time.perf_counter() - t0
