"""The serving engine: a batching queue in a worker thread, admission control, and the guard and backend.

:class:`Batcher` is a request queue with a small batching window feeding one backend call per batch, in a
worker thread; :class:`ServeEngine` holds guard + backend + batcher + admission control, and is what the HTTP
layer (:mod:`forgetlab.eco.serve.http`) talks to.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from pathlib import Path
from typing import Any

from ...errors import BadInput
from ..guard import EcoGuard, GuardLike
from ..placement import Placement
from .backends import make_backend
from .types import Backend, Event, Failed, GenRequest, ServeLimits


class Batcher:
    """A queue of requests drained by one worker thread in batches of at most ``max_rows`` rows.

    The worker blocks for the first request, then waits up to ``window_s`` for more (stopping early when
    the batch is full), and hands the batch to ``backend.run_batch``. A backend error fails every request
    of that batch with a :class:`Failed` event; the worker keeps serving.
    """

    def __init__(self, backend: Backend, max_rows: int, window_s: float) -> None:
        self.backend, self.max_rows, self.window_s = backend, max_rows, window_s
        self._queue: queue.Queue[GenRequest | None] = queue.Queue()
        self._carry: GenRequest | None = None
        self._thread = threading.Thread(target=self._loop, name="forgetlab-batcher", daemon=True)
        self.batches = 0
        self.rows_served = 0
        self._thread.start()

    def submit(self, req: GenRequest) -> None:
        self._queue.put(req)

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _collect(self) -> list[GenRequest] | None:
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        if first is None:
            return None
        batch, rows = [first], first.rows()
        deadline = time.monotonic() + self.window_s
        while rows < self.max_rows:
            wait = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)  # finish this batch, then stop
                break
            if rows + nxt.rows() > self.max_rows:
                self._carry = nxt
                break
            batch.append(nxt)
            rows += nxt.rows()
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            batch = [r for r in batch if not r.cancelled]
            if not batch:
                continue
            try:
                self.backend.run_batch(batch)
                self.batches += 1
                self.rows_served += sum(r.rows() for r in batch)
            except Exception as exc:  # report to the waiting requests, keep the worker alive
                for req in batch:
                    req.emit(Failed(f"generation failed ({type(exc).__name__})"))


class ServeEngine:
    """Guard + backend + batcher + admission control: what the HTTP layer talks to."""

    def __init__(self, guard: GuardLike, backend: str | Backend = "transformers",
                 limits: ServeLimits | None = None, model_name: str = "forgetlab-eco",
                 backend_options: dict[str, Any] | None = None) -> None:
        self.guard = guard
        self.tokenizer = guard.tokenizer
        self.limits = limits or ServeLimits()
        self.model_name = model_name
        self.backend = (make_backend(backend, guard, **(backend_options or {}))
                        if isinstance(backend, str) else backend)
        self.batcher = Batcher(self.backend, self.limits.max_batch_size, self.limits.batch_window_ms / 1000)
        self.in_flight = 0
        self._lock = threading.Lock()
        self.context_length = _context_length(guard)

    def try_admit(self) -> bool:
        """Count one more in-flight request, or say no when ``max_concurrent`` are already in flight."""
        with self._lock:
            if self.in_flight >= self.limits.max_concurrent:
                return False
            self.in_flight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def submit(self, requests: list[GenRequest]) -> asyncio.Queue[Event]:
        """Queue ``requests``; their events arrive, thread-safely, on the returned asyncio queue."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def emit(event: Event) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        for req in requests:
            req.emit = emit
            self.batcher.submit(req)
        return events

    def close(self) -> None:
        self.batcher.close()


def _context_length(guard: GuardLike) -> int | None:
    """The model's maximum sequence length from its config, when it declares one."""
    config = getattr(getattr(guard, "model", None), "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        val = getattr(config, attr, None)
        if isinstance(val, int) and val > 0:
            return val
    return None


def load_guard(path: str | Path, placement: Placement | None = None) -> EcoGuard:
    """Load a saved guard folder (``EcoGuard.from_pretrained``) on ``placement``; a missing folder is a one-line
    error."""
    path = Path(path)
    if not path.is_dir():
        raise BadInput("guard", str(path), "a folder written by EcoGuard.save_pretrained")
    return EcoGuard.from_pretrained(path, placement=placement)
