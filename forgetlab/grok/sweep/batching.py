"""How many runs one batch should hold on this machine, chosen by a measurement before a sweep trains.

Batching runs into one program pays where one run's step is too small to keep the cores busy, and costs where
the runs' working set outgrows the caches: on a 2-core AMD EPYC (AVX2) a batch of 8 p=97 runs trained at 0.66x the
throughput of the same runs one at a time, and a batch of 32 p=31 runs at 1.03x (docs/benchmarks.md, issue 19),
while a Xeon with AVX-512 measured 2.3x at p=31. So the sweep measures: it trains the sweep's own first runs in
batches of 1, 2, the largest size, then 4, 8, ... up to the spec's ``max_batch_runs`` for a few steps each, with
the thread count its workers will have, and keeps the size with the fewest seconds per run-step. A batch's
numbers do not depend on its size beyond float summation order, so the choice moves time, not results.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

PROBE_SECONDS = 0.1
"""A probe's longer training runs more steps until it takes this much longer than the one-step training, so that
the difference (the steps' own time) stands above timer and scheduler noise. On a quiet Xeon, probes of a 16-run
p=31 sweep at 0.1 and 0.2 s chose the same size, their per-run-step costs within 16% of each other (well inside
the 1.7-3x between sizes), and 0.1 s took the probe from 1.4 to 1.0 s."""
MAX_PROBE_STEPS = 256

PROBE_SHARE = 0.1
"""The probe stops trying larger batches once its own time exceeds this share of the sweep's estimated time one
run at a time, so that a short sweep cannot lose more to probing than batching could win back. (It replaced a
fixed 15 s floor below which only one run per batch was tried: an 11 s p=31 sweep of 16 runs then trained at
0.97x one at a time on a Xeon where a batch of 16 measured 2.1x; on a 7 s sweep on the AMD EPYC an unbounded
probe had cost 0.73-0.90x.)"""

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


def probe_order(sizes: list[int]) -> list[int]:
    """The order the probe tries ``sizes`` (ascending, from 1): 1 and 2 (does batching pay at all?), then the
    largest (where batching pays, per run-step costs usually fall with the size), then the sizes between."""
    return sizes if len(sizes) <= 3 else [*sizes[:2], sizes[-1], *sizes[2:-1]]


def probe_cost(k: int, per_run_step: float) -> float:
    """About what probing a batch of ``k`` runs costs, given seconds per run-step: the doubling trainings of
    :func:`_step_seconds` (about 3 x :data:`PROBE_SECONDS`), or their first 1 + 8 steps where those alone take
    longer."""
    return max(3 * PROBE_SECONDS, 9 * k * per_run_step)


def measure_batch_runs(trainer: Any, configs: Sequence[Any], cap: int, threads: int,
                       memory_budget: int) -> tuple[int, dict[int, float]]:
    """``(size, {size: seconds per run-step})``: the batch size with the fewest seconds per run-step for
    ``configs`` (runs of one batch shape; a run-step of the first run, scaled by the trainer's ``run_work`` where
    it has one, so that a batch padding small runs to its largest pays for the padding) on this machine with
    ``threads`` torch threads, tried up to ``cap`` and to the largest batch whose estimated memory fits
    ``memory_budget``, in :func:`probe_order`; one run per batch without a probe below
    :data:`MIN_PROBE_RUN_STEPS` run-steps or where only one size fits. A size is skipped when its probe
    (:func:`probe_cost`) would take the probe past :data:`PROBE_SHARE` of the estimated time of
    ``configs`` one run at a time; the probe stops when the largest size is the best so far, and when a size costs
    :data:`WORSE` times the best (after the jump to the largest size: when one of the sizes between does)."""
    import torch

    if sum(c.steps for c in configs) < MIN_PROBE_RUN_STEPS:
        return 1, {}
    work = getattr(trainer, "run_work", lambda _c: 1)  # runs of different sizes: time per unit of their work
    sizes = [k for k in candidate_sizes(cap, len(configs))
             if k == 1 or trainer.estimate_batch_bytes(list(configs[:k])) <= memory_budget]
    if len(sizes) == 1:
        return 1, {}
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    per_run: dict[int, float] = {}
    t0 = time.perf_counter()
    try:
        _step_seconds(trainer, list(configs[:1]), warm_up=True)  # first-call costs (lazy imports, allocator)
        run_steps = sum(c.steps * work(c) / work(configs[0]) for c in configs)  # in run-steps of the first run
        for k in probe_order(sizes):
            if per_run and time.perf_counter() - t0 + probe_cost(k, per_run[max(per_run)]) > \
                    PROBE_SHARE * per_run[1] * run_steps:
                continue  # this size's probe would take the probe past its budget
            batch = list(configs[:k])
            per_run[k] = _step_seconds(trainer, batch) / sum(work(c) for c in batch) * work(configs[0])
            best = min(per_run, key=per_run.get)
            if k == sizes[-1] and best == k:
                break
            if per_run[k] > WORSE * per_run[best] and not (k == sizes[-1] and len(sizes) > 3):
                break  # past the best (a worse jump to the largest size still tries the sizes between)
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
