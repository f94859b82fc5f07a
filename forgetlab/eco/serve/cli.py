"""``forgetlab eco serve``: put a saved guard behind an OpenAI-compatible HTTP API.

Thin: the limits are the fields of :class:`~forgetlab.eco.serve.types.ServeLimits` (defaults and help stated
once there, validated by it), then load the guard, build the engine and run uvicorn.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ...options import config_command
from ..placement import Placement
from .types import ServeLimits

API_KEY_ENV = "FORGETLAB_API_KEY"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@config_command(Placement, param="placement")
@config_command(ServeLimits, param="limits")
def serve_command(
    limits: ServeLimits,
    placement: Placement,
    guard: Path = typer.Option(..., "--guard", help="Guard folder written by 'forgetlab eco fit'."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
    backend: str = typer.Option("transformers", help="Generation backend, one of: transformers, vllm."),
    model_name: str | None = typer.Option(None, help="Model id clients send and /v1/models lists "
                                          "(default: the guard folder's name)."),
    vllm_url: str = typer.Option("", help="Base URL of a `vllm serve --enable-prompt-embeds` server "
                                 "(backend vllm; default: run vLLM in process)."),
    vllm_model: str = typer.Option("", help="Model name/path for vLLM (default: the guard's base model)."),
    log_level: str = typer.Option("info", help="uvicorn log level (on stderr), one of: " + ", ".join(LOG_LEVELS)
                                  + "."),
    api_key: str | None = typer.Option(None, envvar=API_KEY_ENV, show_envvar=True,
                                help="Require 'Authorization: Bearer KEY' on every /v1 route, as vLLM's --api-key "
                                "(/health and /metrics stay open). Prefer the environment variable: a command "
                                "line is visible to other users of the machine (default: no key)."),
    torch_threads: int = typer.Option(0, min=0, help="torch intra-op threads (0: torch's default; 1 is "
                                      "often fastest for small models on a shared CPU)."),
) -> None:
    """Serve GUARD over HTTP: /v1/completions, /v1/chat/completions (streaming), /v1/models, /health, /metrics.

    Prints nothing on stdout: status and logs go to stderr."""
    from ...errors import BadInput, check_choice

    check_choice("log_level", log_level, LOG_LEVELS)  # the checks that need no torch first
    if api_key is None and os.environ.get(API_KEY_ENV) == "":  # click reads an empty variable as unset
        api_key = ""
    if api_key is not None and not api_key.strip():  # an unset "$KEY" would otherwise open the server
        raise BadInput("api_key", api_key, f"a non-empty key (unset {API_KEY_ENV} and drop --api-key to serve "
                       "without one)")
    if model_name is not None and not model_name.strip():
        raise BadInput("model_name", model_name, "a non-empty model id (default: the guard folder's name)")
    from .backends import BACKENDS
    from .engine import ServeEngine, load_guard
    from .server import bind_listener, listen_url, run_server

    BACKENDS.check(backend)
    options = {"url": vllm_url or None, "model": vllm_model or None} if backend == "vllm" else {}
    sock = bind_listener(host, port)
    try:
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        loaded = load_guard(guard, placement)
        engine = ServeEngine(loaded, backend, limits, model_name=model_name or guard.resolve().name,
                             backend_options=options)
    except BaseException:
        sock.close()
        raise
    typer.echo(f"serving {guard} ({backend}) on {listen_url(sock)}/v1", err=True)
    run_server(engine, sock, log_level=log_level, api_key=api_key)
