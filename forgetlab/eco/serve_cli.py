"""``forgetlab eco serve``: put a saved guard behind an OpenAI-compatible HTTP API.

Thin: parse options, validate them (ServeLimits raises BadInput naming the option), load the guard, build
the engine and run uvicorn. Mounted by ``register(app)`` from ``forgetlab/eco/cli.py``.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""

    @app.command("serve")
    def serve(
        guard: Path = typer.Option(..., "--guard", help="Guard folder written by EcoGuard.save_pretrained."),
        host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
        port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
        backend: str = typer.Option("transformers", help="Generation backend: transformers or vllm."),
        model_name: str = typer.Option("", help="Model id clients send and /v1/models lists "
                                       "(default: the guard folder's name)."),
        max_prompt_tokens: int = typer.Option(2048, help="Longest prompt accepted, in tokens."),
        max_tokens: int = typer.Option(512, help="Largest max_tokens a request may ask for."),
        max_body_bytes: int = typer.Option(1_000_000, help="Largest request body, in bytes."),
        max_concurrent: int = typer.Option(64, help="Requests in flight before answering 429."),
        max_batch_size: int = typer.Option(16, help="Rows per batched generate call."),
        batch_window_ms: float = typer.Option(5.0, help="How long the batcher waits to fill a batch."),
        vllm_url: str = typer.Option("", help="Base URL of a `vllm serve --enable-prompt-embeds` server "
                                     "(backend vllm; default: run vLLM in process)."),
        vllm_model: str = typer.Option("", help="Model name/path for vLLM (default: the guard's base model)."),
        log_level: str = typer.Option("info", help="uvicorn log level."),
        torch_threads: int = typer.Option(0, min=0, help="torch intra-op threads (0: torch's default; 1 is "
                                          "often fastest for small models on a shared CPU)."),
    ) -> None:
        """Serve GUARD over HTTP: /v1/completions, /v1/chat/completions (streaming), /v1/models, /health."""
        from ..errors import check_choice
        from .serve import ServeEngine, ServeLimits, load_guard, run_server
        from .serve_backends import BACKENDS

        limits = ServeLimits(max_prompt_tokens=max_prompt_tokens, max_tokens=max_tokens,
                             max_body_bytes=max_body_bytes, max_concurrent=max_concurrent,
                             max_batch_size=max_batch_size, batch_window_ms=batch_window_ms)
        from . import serve_vllm  # noqa: F401  (so "vllm" is a known backend name)

        check_choice("backend", backend, BACKENDS)
        check_choice("log_level", log_level, ("critical", "error", "warning", "info", "debug", "trace"))
        options = {}
        if backend == "vllm":
            options = {"url": vllm_url or None, "model": vllm_model or None}
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        loaded = load_guard(guard)
        engine = ServeEngine(loaded, backend, limits, model_name=model_name or guard.resolve().name,
                             backend_options=options)
        typer.echo(f"serving {guard} ({backend}) on http://{host}:{port}/v1", err=True)
        run_server(engine, host=host, port=port, log_level=log_level)
