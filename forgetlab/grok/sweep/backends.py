"""Sweep backends: where batches of runs are trained, chosen by name from :data:`BACKENDS` (``local``, ``ray``).

A backend receives :class:`BatchJob` s and calls ``on_done(job, records)`` in the driver as each batch
finishes (the driver persists them at once). Jobs carry plain data only (the trainer's module name and config
dicts), so they travel to worker processes and Ray tasks unchanged; :func:`execute_batch` is the one function
that trains a batch anywhere.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import BadInput, ForgetlabError
from ...hardware import usable_cores
from ...registry import Registry
from ..fourier import ipr_stats


@dataclass(frozen=True)
class BatchJob:
    """One batch: runs of the same shape trained as one program. ``configs`` are plain field dicts."""

    batch_id: str
    run_ids: tuple[str, ...]
    configs: tuple[dict[str, Any], ...]
    trainer: str
    keep_history: bool = False
    save_weights: bool = False


class Backend(Protocol):
    """Trains ``jobs`` (``workers`` processes or CPUs) and calls ``on_done(job, records)`` as each finishes."""

    def __call__(self, jobs: Sequence[BatchJob], *, workers: int, threads: int,
                 on_done: Callable[[BatchJob, list[dict[str, Any]]], None]) -> None: ...


# ---------------------------------------------------------------------- the work of one batch
def _neuron_ipr(result: Any) -> Any:
    for name in ("ipr_final", "neuron_ipr", "ipr"):
        v = getattr(result, name, None)
        if v is not None and not callable(v):
            return v
    return None


def execute_batch(job: BatchJob, threads: int | None = None) -> list[dict[str, Any]]:
    """Train one batch with the job's trainer; return one record per run (``weights`` tensors included
    only when ``save_weights``). Runs anywhere: in-process, a worker process, a Ray task."""
    import torch

    from .spec import config_dict, load_trainer

    if threads:
        torch.set_num_threads(threads)
    trainer = load_trainer(job.trainer)
    configs = [trainer.TrainConfig(**c) for c in job.configs]
    results = trainer.train_many(configs, keep_history=job.keep_history)
    if len(results) != len(configs):
        raise ForgetlabError(f"trainer {job.trainer} returned {len(results)} results for {len(configs)} runs")
    records = []
    for rid, cfg, res in zip(job.run_ids, configs, results, strict=True):
        rec: dict[str, Any] = {"run_id": rid, "config": config_dict(cfg),
                               "summary": dict(res.summary), "ipr": ipr_stats(_neuron_ipr(res))}
        if job.keep_history:
            rec["history"] = list(getattr(res, "history", None) or [])
        if job.save_weights:
            rec["weights"] = {k: v.detach().cpu() for k, v in (getattr(res, "state", None) or {}).items()}
        records.append(rec)
    return records


# ---------------------------------------------------------------------- local
def _watch_parent(parent: int) -> None:
    """Worker-process initializer: exit when the driver dies (even by SIGKILL), so no orphan keeps training."""

    def loop() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=loop, daemon=True).start()


def local_workers(workers: int) -> int:
    """The number of local worker processes ``workers`` asks for: 0 = one per usable core."""
    if workers < 0:
        raise BadInput("workers", workers, "an integer >= 1, or 0 for one process per core")
    return workers or usable_cores()


def local_backend(jobs: Sequence[BatchJob], *, workers: int = 1, threads: int = 0,
                  on_done: Callable[[BatchJob, list[dict[str, Any]]], None]) -> None:
    """Train batches in this process (``workers=1``, this process's torch threads), or in ``workers`` spawned
    processes (0 = one per core) with ``threads`` torch threads each (0 = ``cores // workers``).

    Worker processes pay their start-up (a fresh interpreter importing torch, seconds each): on the 2-core EPYC
    they measured 0.56-0.67x the throughput of one process for sweeps of a few seconds per worker
    (docs/benchmarks.md, issue 19), so the default is this process. A batch's numbers do not depend on where it
    runs (the same program on the same runs), so every choice of ``workers`` gives bit-identical results.
    """
    workers = local_workers(workers)
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:  # in this process: with several workers asked for, at the threads one would have
            on_done(job, execute_batch(job, threads if workers > 1 else None))
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    workers = min(workers, len(jobs))
    threads = threads or max(1, usable_cores() // workers)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_watch_parent,
                             initargs=(os.getpid(),)) as pool:
        pending = {pool.submit(execute_batch, job, threads): job for job in jobs}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    on_done(pending.pop(fut), fut.result())
        except BaseException:  # Ctrl-C, SIGTERM to this process alone, a failed batch: stop the workers now
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()  # a batch already running would otherwise finish first (minutes at p = 97)
            raise


# ---------------------------------------------------------------------- ray
def _reachable(address: str, timeout_s: float = 5.0) -> bool:
    """TCP probe of a Ray address (``host:port`` or ``ray://host:port``): ``ray.init`` itself retries an
    unreachable address for minutes, so we ask first."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _running_cluster(ray: Any) -> str | None:
    """Address of a cluster started with ``ray start --head`` on this machine (Ray's own lookup), or None."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # ConnectionError when none runs; any API drift means "none found"
        return None


def _init_keeping_handlers(ray: Any, **kwargs: Any) -> None:
    """``ray.init(**kwargs)``, then the SIGTERM and SIGINT handlers as they were: Ray installs its own, which
    exit without our clean-up (the ``error: terminated`` line, exit 143, the interrupted sweep's state kept)."""
    import signal

    if threading.current_thread() is not threading.main_thread():  # handlers are the main thread's
        ray.init(**kwargs)
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        ray.init(**kwargs)
    finally:
        for sig, handler in before.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(sig, handler)


def _ray_connect(ray: Any, workers: int) -> bool:
    """Connect to ``RAY_ADDRESS``, else to a running local cluster, else start a local Ray with ``workers``
    CPUs. Returns True if we initialized Ray (and must shut it down)."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    address = os.environ.get("RAY_ADDRESS")
    if address:
        if address not in ("auto", "local") and not _reachable(address):
            raise ForgetlabError(f"backend ray: cannot reach the Ray cluster at RAY_ADDRESS={address} "
                                 "(start one with `ray start --head`, or unset RAY_ADDRESS to run a local Ray)")
        target = address
    else:
        found = _running_cluster(ray)
        target = found if found is not None and _reachable(found) else None
    try:
        if target is not None:
            _init_keeping_handlers(ray, address=target, **quiet)
        else:
            _init_keeping_handlers(ray, num_cpus=workers, **quiet)
    except Exception as exc:
        where = f"connect to {target}" if target is not None else "start a local Ray"
        raise ForgetlabError(f"backend ray: cannot {where} ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return True


def ray_backend(jobs: Sequence[BatchJob], *, workers: int = 0, threads: int = 0,
                on_done: Callable[[BatchJob, list[dict[str, Any]]], None]) -> None:
    """Send each batch to a Ray task (1 CPU, 1 torch thread each: ``threads`` is not used) and persist results
    as they arrive.

    A running cluster (``ray start --head``; ``RAY_ADDRESS`` or ``address="auto"``) is used when there is
    one, else a local Ray with ``workers`` CPUs (default: all cores) is started and shut down afterwards.
    """
    try:
        import ray
    except ImportError:
        raise ForgetlabError("backend ray: Ray is not installed (pip install 'forgetlab[ray]')") from None
    if not jobs:
        return
    started = _ray_connect(ray, workers or os.cpu_count() or 1)
    try:
        remote = ray.remote(num_cpus=1, max_retries=2)(execute_batch)
        pending = {remote.remote(job, 1): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    records = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    if isinstance(cause, ForgetlabError):
                        raise cause from None
                    raise
                on_done(job, records)
    finally:
        if started:
            ray.shutdown()


def job_to_dict(job: BatchJob) -> dict[str, Any]:
    """A job as plain data (for logs and remote workers)."""
    return dataclasses.asdict(job)


BACKENDS: Registry[Backend] = Registry("backend", {"local": local_backend, "ray": ray_backend})
"""Sweep backends by name; the ``ray`` package is imported only when that backend runs."""


def get_backend(name: str) -> Backend:
    """The backend called ``name``; an unknown name lists the known ones."""
    return BACKENDS.get(name)
