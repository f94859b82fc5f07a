"""Running the ECO server: uvicorn in the foreground (the CLI) or in a background thread (tests, benchmarks).

Every log line (uvicorn's access log included, which uvicorn sends to stdout by default) goes to stderr: a
server has no result to print.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...errors import ForgetlabError
from .engine import ServeEngine
from .http import create_app


def free_loopback_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening-ready TCP socket bound to a free port on loopback (bound, so no other process takes it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


LISTEN_BACKLOG = 2048  # uvicorn's default: clients that connect while the model loads wait in it


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one), made as uvicorn makes it (IPv6 when
    the host has a colon, else IPv4; ``""`` every interface) but before any model loads, so that a busy port or
    an unknown host is a one-line error naming it instead of uvicorn's log after the load."""
    from ...errors import BadInput

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)  # listening: no second server can bind the port while this one loads
    except (OSError, UnicodeError, OverflowError) as exc:
        sock.close()
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            raise BadInput("port", port, "a free TCP port (another process listens on this one; 0 picks one)") from None
        if getattr(exc, "errno", None) == errno.EACCES:
            raise BadInput("port", port, "a port this user may bind (1024 and above without privileges)") from None
        raise BadInput("host", host, "an address or name of this machine (default 127.0.0.1)") from None
    return sock


def listen_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a listening socket (an IPv6 host in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with the access log on stderr too."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


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
                            lifespan="off", timeout_graceful_shutdown=5, log_config=log_config())
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
def serve_in_thread(engine: ServeEngine, host: str = "127.0.0.1", log_level: str = "warning",
                    api_key: str | None = None) -> Iterator[RunningServer]:
    """Serve ``engine`` in a background thread on a free port (tests, the load benchmark); stop on exit.

    The engine's batcher is closed on exit too.
    """
    try:
        with serve_app_in_thread(create_app(engine, api_key=api_key), host, log_level) as url:
            yield RunningServer(url, engine)
    finally:
        engine.close()


def run_server(engine: ServeEngine, sock: socket.socket, log_level: str = "info",
               api_key: str | None = None) -> None:
    """Serve on the bound ``sock`` (:func:`bind_listener`) in the foreground until interrupted (the CLI's
    ``forgetlab eco serve``)."""
    import uvicorn

    try:
        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(create_app(engine, api_key=api_key), host=host, port=port, log_level=log_level,
                                timeout_graceful_shutdown=5, log_config=log_config())
        server = uvicorn.Server(config)
        server.run(sockets=[sock])
        if not server.started and not server.should_exit:  # uvicorn.run exits 3 here; say it on one line
            raise ForgetlabError("the HTTP server did not start (its log above says why)")
    finally:
        engine.close()
        sock.close()
