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
    """Every request's flag: the guard is asked once for the requests not classified yet (the engine's
    classify-ahead thread may have done it), each of which gets its ``Flagged`` event."""
    todo = [r for r in requests if r.flagged is None]
    if todo:
        flags = [bool(f) for f in guard.classify([r.classify_text for r in todo])]
        if len(flags) != len(todo):
            raise RuntimeError(f"guard.classify returned {len(flags)} flags for {len(todo)} prompts")
        for req, flag in zip(todo, flags, strict=True):
            req.flagged = flag
            req.emit(Flagged(flag))
    return [bool(r.flagged) for r in requests]
