"""Generation backends of the ECO server, by name: ``transformers`` (the guard's own model, default) and
``vllm`` (vLLM generates; the guard classifies and corrupts). Entries are lazy: vLLM is imported only when its
backend is built.
"""

from __future__ import annotations

from typing import Any

from ....registry import Registry
from ...guard import GuardLike
from ..types import Backend, Flagged, GenRequest

BACKENDS: Registry[Any] = Registry("backend", {
    "transformers": "forgetlab.eco.serve.backends.transformers:TransformersBackend",
    "vllm": "forgetlab.eco.serve.backends.vllm:VllmBackend",
})


def make_backend(name: str, guard: GuardLike, **options: Any) -> Backend:
    """Build the backend called ``name``; an unknown name is a BadInput listing the known ones."""
    return BACKENDS.get(name)(guard, **options)


def classify_batch(guard: GuardLike, requests: list[GenRequest]) -> list[bool]:
    """Ask the guard once for the whole batch and send each request its ``Flagged`` event."""
    flags = [bool(f) for f in guard.classify([r.classify_text for r in requests])]
    if len(flags) != len(requests):
        raise RuntimeError(f"guard.classify returned {len(flags)} flags for {len(requests)} prompts")
    for req, flag in zip(requests, flags, strict=True):
        req.flagged = flag
        req.emit(Flagged(flag))
    return flags
