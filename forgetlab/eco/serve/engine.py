"""The serving engine: a batching queue in a worker thread, admission control, and the guard and backend.

:class:`Batcher` is a request queue with a small batching window feeding one backend call per batch, in a
worker thread; :class:`ServeEngine` holds guard + backend + batcher + admission control + metrics, and is what
the HTTP layer (:mod:`forgetlab.eco.serve.http`) talks to. Tokenizing a request (and applying a chat template)
runs on the engine's own tokenizer thread with its own copy of the tokenizer, never on the event loop (a long
prompt would stall every client) and never on the batcher's copy (HF tokenizers are not safe to share between
threads). :class:`FolderWatcher` notices when the served guard's folder changes (a forget target added or
removed with ``forgetlab eco fit --add-to`` / ``eco targets --remove``) and the guard re-reads its targets between
two batches, in the worker thread, without a restart or a model reload.
"""

from __future__ import annotations

import asyncio
import copy
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ...errors import BadInput, ForgetlabError
from ..guard import EcoGuard, GuardLike
from ..guard_folder import GUARD_FOLDER
from ..placement import Placement
from .backends import classify_batch, make_backend
from .metrics import ServerMetrics
from .types import Backend, Event, Failed, GenRequest, ServeLimits

T = TypeVar("T")
NORMALIZATION_MARGIN = 2  # a tokenizer's normalizer may merge a character pair (NFKC) before tokenizing


class Batcher:
    """A queue of requests drained by one worker thread in batches of at most ``max_rows`` rows.

    The worker blocks for the first request, then waits up to ``window_s`` for more (stopping early when
    the batch is full), and hands the batch to ``backend.run_batch``. A backend error fails every request
    of that batch with a :class:`Failed` event; the worker keeps serving.
    """

    def __init__(self, backend: Backend, max_rows: int, window_s: float,
                 on_batch: Callable[[float], None] | None = None,
                 before_batch: Callable[[], None] | None = None) -> None:
        self.backend, self.max_rows, self.window_s = backend, max_rows, window_s
        self.on_batch, self.before_batch = on_batch, before_batch
        self._queue: queue.Queue[GenRequest | None] = queue.Queue()
        self._carry: GenRequest | None = None
        self._thread = threading.Thread(target=self._loop, name="forgetlab-batcher", daemon=True)
        self.batches = 0
        self.rows_served = 0
        self._thread.start()

    def submit(self, req: GenRequest) -> None:
        self._queue.put(req)

    def depth(self) -> int:
        """Requests waiting for a batch (queued, or carried over to the next batch)."""
        return self._queue.qsize() + (self._carry is not None)

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
            if self.before_batch is not None:
                self.before_batch()
            t0 = time.perf_counter()
            try:
                self.backend.run_batch(batch)
                self.batches += 1
                self.rows_served += sum(r.rows() for r in batch)
            except Exception as exc:  # report to the waiting requests, keep the worker alive
                for req in batch:
                    req.emit(Failed(f"generation failed ({type(exc).__name__})"))
            if self.on_batch is not None:
                self.on_batch(time.perf_counter() - t0)


class ClassifyAhead:
    """Runs the flag rule on queued requests in a thread of its own, then hands them to ``forward`` (the batcher).

    While the batcher's worker generates one batch, the next requests are already being classified, so on a
    multi-core CPU (or with the model on a GPU) the classifier's time hides behind generation instead of adding
    to it. It takes whatever is queued (at most ``max_rows`` requests per classify call; no waiting window). A
    classifier error fails those requests with :class:`Failed`; they never reach generation unflagged. ``lock``
    is held while classifying and by the guard's reload, so targets never change mid-classification.
    """

    def __init__(self, guard: GuardLike, forward: Callable[[GenRequest], None], max_rows: int,
                 lock: threading.Lock) -> None:
        self.guard, self.forward, self.max_rows, self.lock = guard, forward, max_rows, lock
        self._queue: queue.Queue[GenRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="forgetlab-classify", daemon=True)
        self._thread.start()

    def submit(self, req: GenRequest) -> None:
        self._queue.put(req)

    def depth(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _take(self) -> tuple[list[GenRequest], bool]:
        """(the requests queued now, at most ``max_rows``; whether the stop sentinel came)."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self.max_rows:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take()
            batch = [r for r in batch if not r.cancelled]
            if not batch:
                continue
            try:
                with self.lock:
                    classify_batch(self.guard, batch)
            except Exception as exc:  # report to the waiting requests, keep the thread alive
                for req in batch:
                    req.emit(Failed(f"classification failed ({type(exc).__name__})"))
                continue
            for req in batch:
                self.forward(req)


class FolderWatcher:
    """Polls a guard folder's ``guard.json`` every ``interval_s`` in a daemon thread; :meth:`apply` (called by
    the batcher between batches) has the guard re-read its targets once after each change. A folder that cannot
    be read (mid-swap, damaged, another base model) leaves the guard as it was; the next change is tried again."""

    def __init__(self, guard: Any, interval_s: float = 1.0) -> None:
        self.guard, self.interval_s = guard, interval_s
        self.record = Path(guard.folder) / "guard.json"
        self._seen = self._stamp()
        self._pending = threading.Event()
        self._stop = threading.Event()
        self.reloads = 0
        self._thread = threading.Thread(target=self._poll, name="forgetlab-guard-watch", daemon=True)
        self._thread.start()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.record.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            stamp = self._stamp()
            if stamp is not None and stamp != self._seen:
                self._seen = stamp
                self._pending.set()

    def apply(self) -> None:
        """Re-read the guard's targets if the folder changed since the last time (worker thread)."""
        if not self._pending.is_set():
            return
        self._pending.clear()
        try:
            changed = self.guard.reload_targets()
        except (ForgetlabError, OSError) as exc:
            print(f"guard folder changed but was not reloaded: {exc}", file=sys.stderr)
            return
        self.reloads += 1
        names = ", ".join(t.name for t in self.guard.targets)
        print(f"guard reloaded from {self.record.parent}: targets {names}" + ("" if changed else " (unchanged)"),
              file=sys.stderr)

    def close(self) -> None:
        self._stop.set()


class ServeEngine:
    """Guard + backend + batcher + admission control: what the HTTP layer talks to. A guard loaded from a folder
    is watched (``watch_s`` seconds between looks; 0: never) and picks up added or removed targets."""

    def __init__(self, guard: GuardLike, backend: str | Backend = "transformers",
                 limits: ServeLimits | None = None, model_name: str = "forgetlab-eco",
                 backend_options: dict[str, Any] | None = None, watch_s: float = 1.0) -> None:
        self.guard = guard
        self.tokenizer = copy.deepcopy(guard.tokenizer)  # the HTTP side's own copy (see the module docstring)
        self.limits = limits or ServeLimits()
        self.model_name = model_name
        self.backend = (make_backend(backend, guard, **(backend_options or {}))
                        if isinstance(backend, str) else backend)
        folder = getattr(guard, "folder", None)
        self.watcher = (FolderWatcher(guard, watch_s)
                        if watch_s > 0 and folder is not None and hasattr(guard, "reload_targets") else None)
        self.in_flight = 0
        self.metrics = ServerMetrics(queue_depth=self._queued, in_flight=lambda: self.in_flight)
        self._guard_lock = threading.Lock()  # classification vs a reload of the guard's targets
        self.batcher = Batcher(self.backend, self.limits.max_batch_size, self.limits.batch_window_ms / 1000,
                               on_batch=self.metrics.batch.observe,
                               before_batch=self._reload if self.watcher is not None else None)
        self.ahead = (ClassifyAhead(guard, self.batcher.submit, self.limits.max_batch_size, self._guard_lock)
                      if classifies_ahead(self.limits.classify_ahead, self.backend) else None)
        self._lock = threading.Lock()
        self._tokenize_pool = ThreadPoolExecutor(1, thread_name_prefix="forgetlab-tokenize")
        self.context_length = _context_length(guard)
        self.max_prompt_chars = self.limits.max_prompt_tokens * longest_token_chars(guard.tokenizer) \
            * NORMALIZATION_MARGIN

    def _queued(self) -> int:
        """Requests waiting: for the classifier (classify-ahead) or for a batch."""
        return self.batcher.depth() + (self.ahead.depth() if self.ahead is not None else 0)

    def _reload(self) -> None:
        """The folder watcher's reload, between two batches, never during a classification."""
        with self._guard_lock:
            self.watcher.apply()

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (tokenizing) on the engine's tokenizer thread, awaiting it from the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._tokenize_pool, fn, *args)

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
            (self.ahead or self.batcher).submit(req)
        return events

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.close()
        self.batcher.close()
        self._tokenize_pool.shutdown(wait=False, cancel_futures=True)
        if self.watcher is not None:
            self.watcher.close()


def classifies_ahead(setting: str, backend: Backend) -> bool:
    """``ServeLimits.classify_ahead`` resolved for ``backend``: auto is on unless the backend generates in this
    process on the CPU (the transformers backend with any weight on the CPU, or offloaded as ``meta``), where a
    classify thread competes with generation for the same cores instead of hiding behind it
    (docs/benchmarks/serve.md)."""
    if setting != "auto":
        return setting == "on"
    if getattr(backend, "name", None) != "transformers":
        return True  # generation elsewhere (vLLM) or unknown: overlap it
    try:
        devices = {p.device.type for p in backend.model.parameters()}
    except (AttributeError, TypeError):
        return False
    return bool(devices) and not devices & {"cpu", "meta"}


def longest_token_chars(tokenizer: Any) -> int:
    """Characters of the longest vocabulary entry: no token covers more characters of a text, so a prompt of
    more than ``max_prompt_tokens`` times this many characters is too long without tokenizing it."""
    try:
        return max(1, max(len(t) for t in tokenizer.get_vocab()))
    except (AttributeError, TypeError, ValueError):  # no vocabulary to read: no bound from it
        return 1 << 20


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
        raise BadInput("guard", str(path), GUARD_FOLDER)
    return EcoGuard.from_pretrained(path, placement=placement)
