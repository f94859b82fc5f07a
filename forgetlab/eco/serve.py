"""Serve an ECO-guarded model over an OpenAI-compatible HTTP API (FastAPI + uvicorn).

Pieces: :class:`ServeLimits` (what a request may ask for), :class:`Batcher` (a request queue with a small
batching window feeding one backend call per batch, in a worker thread), :class:`ServeEngine` (guard +
backend + batcher + admission control) and :func:`serve_in_thread` / :func:`run_server` to run the app.
The HTTP layer lives in ``serve_api.py``, backends in ``serve_backends.py`` and ``serve_vllm.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, ForgetlabError, check_range
from .serve_backends import Backend, Event, Failed, GenRequest, GuardLike, make_backend


@dataclass(frozen=True)
class ServeLimits:
    """Per-request and server-wide limits; every one is a CLI option of ``forgetlab eco serve``.

    ``max_concurrent`` counts HTTP generation requests admitted and not yet answered (queued or running);
    one more is refused with 429. ``max_batch_size`` counts rows (choices) per ``generate`` call.
    """

    max_prompt_tokens: int = 2048
    max_tokens: int = 512
    max_body_bytes: int = 1_000_000
    max_concurrent: int = 64
    max_batch_size: int = 16
    batch_window_ms: float = 5.0
    max_n: int = 8

    def __post_init__(self) -> None:
        for name in ("max_prompt_tokens", "max_tokens", "max_body_bytes", "max_concurrent",
                     "max_batch_size", "max_n"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInput(name, value, "an integer >= 1")
        check_range("batch_window_ms", self.batch_window_ms, 0.0, 10_000.0, hi_open=False)


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


def load_guard(path: str | Path) -> GuardLike:
    """Load a saved guard folder with ``EcoGuard.from_pretrained`` (part A's format), as a ForgetlabError
    naming the folder when it is missing."""
    path = Path(path)
    if not path.is_dir():
        raise BadInput("guard", str(path), "a folder written by EcoGuard.save_pretrained")
    try:
        from .guard import EcoGuard
    except ImportError as exc:  # pragma: no cover - part A not installed
        raise ForgetlabError(f"forgetlab.eco.guard is not available ({exc})") from None
    return EcoGuard.from_pretrained(path)


def free_loopback_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening-ready TCP socket bound to a free port on loopback (bound, so no other process takes it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@dataclass
class RunningServer:
    """A server started by :func:`serve_in_thread`: its base URL and engine."""

    url: str
    engine: ServeEngine


@contextlib.contextmanager
def serve_app_in_thread(app: Any, host: str = "127.0.0.1", log_level: str = "warning") -> Iterator[str]:
    """Run an ASGI ``app`` with uvicorn in a background thread on a free port of ``host``; yield its URL."""
    import uvicorn

    sock = free_loopback_socket(host)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            lifespan="off", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="forgetlab-uvicorn",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise ForgetlabError("the HTTP server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextlib.contextmanager
def serve_in_thread(engine: ServeEngine, host: str = "127.0.0.1",
                    log_level: str = "warning") -> Iterator[RunningServer]:
    """Serve ``engine`` in a background thread on a free port (tests, the load benchmark); stop on exit.

    The engine's batcher is closed on exit too.
    """
    from .serve_api import create_app

    try:
        with serve_app_in_thread(create_app(engine), host, log_level) as url:
            yield RunningServer(url, engine)
    finally:
        engine.close()


def run_server(engine: ServeEngine, host: str = "127.0.0.1", port: int = 8000,
               log_level: str = "info") -> None:
    """Serve in the foreground until interrupted (the CLI's ``forgetlab eco serve``)."""
    import uvicorn

    from .serve_api import create_app

    try:
        uvicorn.run(create_app(engine), host=host, port=port, log_level=log_level,
                    timeout_graceful_shutdown=5)
    finally:
        engine.close()
