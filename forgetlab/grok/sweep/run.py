"""Resumable sweeps: expand a spec into runs, group them into batches, train them on a backend, store each
batch's runs the moment it finishes, and regenerate ``results.csv``.

Batches are planned from the *whole* run list (never from what is left), so a resumed or concurrent sweep
trains exactly the same batches as an uninterrupted one and gets identical numbers. A batch with any run
missing is retrained whole; only its missing runs are written.

    >>> from forgetlab.grok.sweep.run import run_sweep
    >>> from forgetlab.grok.sweep.spec import build_spec, load_trainer
    >>> spec = build_spec(preset="small", config_cls=load_trainer().TrainConfig)  # doctest: +SKIP
    >>> run_sweep(spec, "out/small")                                               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import BadInput
from ...output import warn
from ...progress import Bar
from .backends import BACKENDS, BatchJob, get_backend, local_workers
from .spec import (
    AXIS_KEYS,
    DEFAULT_TRAINER,
    SEED_KEYS,
    SweepSpec,
    config_dict,
    load_trainer,
    make_configs,
    run_id,
    stable_hash,
)
from .store import SweepStore

__all__ = ["BACKENDS", "SweepResult", "available_memory_bytes", "plan_batches", "run_sweep"]


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: counts of runs (all, found finished and skipped, trained now), where results are."""

    out_dir: Path
    n_runs: int
    n_skipped: int
    n_trained: int
    n_batches: int
    results_csv: Path
    seconds: float
    backend: str
    n_damaged: int = 0  # run records found damaged, set aside and retrained
    batch_runs: int = 0  # runs per batch the sweep planned with (measured, or the spec's max_batch_runs)
    batch_probe: dict[int, float] | None = None  # measured seconds per run-step by batch size (None: not probed)


def available_memory_bytes() -> int:
    """Memory available for new allocations (psutil, else /proc/meminfo, else 4 GiB)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def _gb(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def plan_batches(spec: SweepSpec, configs: Sequence[Any], trainer: Any, trainer_name: str,
                 memory_budget: int) -> list[BatchJob]:
    """Group runs by the trainer's ``batch_key`` (first-appearance order), order each group by the trainer's
    ``run_work`` where it has one (stable), then cut it into batches of at most ``spec.max_batch_runs`` runs whose
    ``estimate_batch_bytes`` fits ``memory_budget``.

    A single run larger than the budget is refused with its estimate.
    """
    groups: dict[Any, list[Any]] = {}
    for cfg in configs:
        groups.setdefault(trainer.batch_key(cfg), []).append(cfg)
    work = getattr(trainer, "run_work", None)
    jobs: list[BatchJob] = []
    for key, members in groups.items():
        if work is not None:  # runs of similar size together: a batch pads every run to its largest
            members = sorted(members, key=work)
        chunk: list[Any] = []
        for cfg in members:
            trial = [*chunk, cfg]
            if len(trial) <= spec.max_batch_runs and trainer.estimate_batch_bytes(trial) <= memory_budget:
                chunk = trial
                continue
            if not chunk:
                need = trainer.estimate_batch_bytes([cfg])
                raise BadInput("max_memory", _gb(memory_budget),
                               f"at least {_gb(need)}: one run of shape {key} needs about that much "
                               "(raise --max-memory, or lower p, width or batch size)")
            jobs.append(_job(chunk, trainer_name, spec))
            chunk = [cfg]
        if chunk:
            jobs.append(_job(chunk, trainer_name, spec))
    return jobs


def _job(chunk: list[Any], trainer_name: str, spec: SweepSpec) -> BatchJob:
    rids = tuple(run_id(c) for c in chunk)
    return BatchJob(batch_id=stable_hash(list(rids)), run_ids=rids, configs=tuple(config_dict(c) for c in chunk),
                    trainer=trainer_name, keep_history=spec.keep_history, save_weights=spec.save_weights)


def _sort_keys(spec: SweepSpec) -> list[str]:
    return [*spec.panel_keys(), *AXIS_KEYS, *SEED_KEYS]


def _unique_configs(spec: SweepSpec, trainer: Any) -> dict[str, Any]:
    """``{run_id: config}`` of every run of ``spec`` (a run listed twice counts once), in expansion order."""
    unique: dict[str, Any] = {}
    for c in make_configs(spec, trainer):
        unique.setdefault(run_id(c), c)
    return unique


def _memory_budget(spec: SweepSpec, max_memory_gb: float | None) -> int:
    """Bytes one batch may use: ``max_memory_gb``, else the spec's, else half the available memory."""
    gb = max_memory_gb if max_memory_gb is not None else spec.max_memory_gb
    if gb is not None and not (math.isfinite(gb) and gb > 0):
        raise BadInput("max_memory", gb, "a positive, finite number of GiB")
    return int(gb * 2**30) if gb is not None else available_memory_bytes() // 2


class _Writer:
    """Persists each finished batch's runs the moment it arrives (runs another process wrote are skipped)."""

    def __init__(self, store: SweepStore, bar: Bar, backend: str) -> None:
        self.store, self.bar, self.trained = store, bar, 0
        self.who = {"pid": os.getpid(), "host": socket.gethostname(), "backend": backend}

    def __call__(self, job: BatchJob, records: list[dict[str, Any]]) -> None:
        have = self.store.finished()
        new = 0
        for rec in records:
            weights = rec.pop("weights", None)
            rec["written_by"] = self.who
            if rec["run_id"] not in have:
                self.store.write_run(rec, weights)
                new += 1
        self.store.release(job.batch_id)
        self.trained += new
        self.bar.advance(new)


def _drain(store: SweepStore, jobs: list[BatchJob], run_ids: set[str], backend: str, workers: int,
           threads: int, writer: _Writer, poll_s: float) -> None:
    """Claim and train batches until every run is finished, waiting on batches other processes hold."""
    run_backend = get_backend(backend)
    while True:
        have = store.finished()
        pending = [j for j in jobs if not set(j.run_ids) <= have]
        if not pending:
            return
        # In-process: claim one batch at a time, so other processes on the same folder share the rest.
        # Worker pools and Ray: claim all that is free and hand it over at once.
        ahead = 1 if backend == "local" and workers == 1 else len(pending)
        mine = []
        for j in pending:
            if len(mine) >= ahead:
                break
            if store.claim(j.batch_id):
                mine.append(j)
        if mine:
            try:
                with store.claims.holding([j.batch_id for j in mine]):  # the heartbeat keeps our leases
                    run_backend(mine, workers=workers, threads=threads, on_done=writer)
            finally:
                for j in mine:  # batches not finished (error, interrupt): let others take them
                    if not set(j.run_ids) <= store.finished():
                        store.release(j.batch_id)
            continue
        time.sleep(poll_s)  # the rest is claimed by other live processes: wait, and watch them
        writer.bar.set(len(store.finished() & run_ids))


def check_backend_threads(backend: str, threads: int) -> None:
    """Refuse a ``--threads`` count out of range, or set with a backend whose workers choose their own (Ray)."""
    from ...hardware import check_threads

    check_threads(threads)
    if threads and backend != "local":
        raise BadInput("threads", threads, "0 with --backend ray (each Ray task trains with 1 torch thread)")


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, *, backend: str = "local", workers: int = 1,
              progress: bool = True, trainer: str = DEFAULT_TRAINER, max_memory_gb: float | None = None,
              poll_s: float = 0.5, threads: int = 0) -> SweepResult:
    """Train every run of ``spec`` not already in ``out_dir``'s store and regenerate ``results.csv``.

    Resumable (finished runs are skipped) and safe to run in several processes at once on one folder:
    batches are claimed before training; batches claimed by another live process are waited for, and
    taken over if that process dies. ``max_memory_gb`` (else the spec's, else half the available memory)
    bounds each batch's estimated memory. ``threads`` (0: the default) sets the torch threads of this process
    with one local worker, of each worker process with several; Ray tasks train with one.
    """
    from ...hardware import set_torch_threads

    t0 = time.perf_counter()
    get_backend(backend)
    if workers < 0:
        raise BadInput("workers", workers, "an integer >= 1, or 0 for all cores")
    check_backend_threads(backend, threads)  # before any work, whatever the workers
    in_process = backend == "local" and local_workers(workers) == 1  # --workers 0 on one core included
    set_torch_threads(threads if in_process else 0)
    mod = load_trainer(trainer)
    unique = _unique_configs(spec, mod)
    configs = list(unique.values())
    getattr(mod, "check_configs", lambda _cs: None)(configs)  # e.g. bf16 matmuls on a CPU without bf16 units
    budget = _memory_budget(spec, max_memory_gb)
    plan_batches(spec, configs[:1], mod, trainer, budget)  # a run too large for the budget: refused before any work
    planned, probe = _batch_size(spec, configs, mod, backend, workers, budget, threads)
    jobs = plan_batches(dataclasses.replace(spec, max_batch_runs=planned), configs, mod, trainer, budget)
    store = SweepStore.open(out_dir, spec.to_dict(), spec.spec_hash(), len(configs), trainer)
    n_damaged = _set_aside_damaged(store)
    n_skipped = len(store.finished() & set(unique))
    with Bar(spec.name, len(configs), progress, extra=("{task.fields[skipped]} skipped (done earlier)",),
             completed=n_skipped, skipped=n_skipped) as bar:
        writer = _Writer(store, bar, backend)
        _drain(store, jobs, set(unique), backend, workers, threads, writer, poll_s)
    csv_path = store.write_results_csv(_sort_keys(spec))
    store.clean_temp_files()
    return SweepResult(out_dir=Path(out_dir), n_runs=len(configs), n_skipped=n_skipped, n_trained=writer.trained,
                       n_batches=len(jobs), results_csv=csv_path, seconds=time.perf_counter() - t0,
                       backend=backend, n_damaged=n_damaged, batch_runs=planned, batch_probe=probe)


def _batch_size(spec: SweepSpec, configs: list[Any], trainer: Any, backend: str, workers: int,
                budget: int, threads: int = 0) -> tuple[int, dict[int, float] | None]:
    """Runs per batch for this sweep: with ``batching = "measured"`` and the local backend, measured on the first
    batch shape's runs with the torch threads each worker will have; else the spec's ``max_batch_runs``."""
    if spec.batching != "measured" or backend != "local" or spec.max_batch_runs == 1 or len(configs) < 2:
        return spec.max_batch_runs, None
    from ...hardware import usable_cores
    from .batching import measure_batch_runs

    first = trainer.batch_key(configs[0])
    shape = [c for c in configs if trainer.batch_key(c) == first]
    if local_workers(workers) == 1:
        threads = torch_threads()
    else:
        threads = threads or max(1, usable_cores() // local_workers(workers))
    return measure_batch_runs(trainer, shape, spec.max_batch_runs, threads, budget)


def torch_threads() -> int:
    """The torch threads of this process (what an in-process batch trains with)."""
    import torch

    return torch.get_num_threads()


def _set_aside_damaged(store: SweepStore) -> int:
    """Report every damaged run record on stderr and move it aside, so that its run is trained again."""
    damaged = store.damaged()
    for rid, why in damaged.items():
        try:
            aside = store.set_aside(rid)
        except FileNotFoundError:  # another process on this folder set it aside first
            continue
        warn(f"{store.run_path(rid)} is damaged ({why}); kept as {aside.name} and the run is trained again")
    return len(damaged)
