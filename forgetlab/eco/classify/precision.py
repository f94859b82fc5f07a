"""The prompt classifier's encoder precision: fp32, bf16, or ``auto`` (bf16 where the hardware runs it fast).

bf16 halves the encoder's memory traffic and, on CPUs with AMX or AVX-512 BF16 units (and CUDA GPUs with bf16
support), runs MiniLM about 2-3x faster; on other CPUs PyTorch emulates bf16 matmuls and they run many times
slower than fp32 (measured here on an AVX2-only EPYC), so ``auto`` keeps fp32 there. The precision is resolved
once, when a classifier is fitted, and saved with it: its thresholds are calibrated in the precision that serves.
"""

from __future__ import annotations

from typing import Any

from ...errors import check_choice
from ...hardware import BF16_CPU_FLAGS, bf16_is_fast, cpu_flags

__all__ = ["BF16_CPU_FLAGS", "PRECISIONS", "bf16_is_fast", "cpu_flags", "resolve_precision", "torch_dtype"]

PRECISIONS = ("auto", "fp32", "bf16")
"""Allowed values of ``ClassifierConfig.precision``; a fitted classifier records fp32 or bf16."""



def torch_dtype(precision: str) -> Any:
    """The torch dtype of a resolved precision (``fp32`` or ``bf16``); torch is imported only here, so that the
    classifier's config stays importable without it."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]


def resolve_precision(name: str, device: str = "cpu", flags: frozenset[str] | None = None) -> str:
    """``fp32`` or ``bf16`` for a :data:`PRECISIONS` value: ``auto`` is bf16 exactly where :func:`bf16_is_fast`."""
    check_choice("precision", name, PRECISIONS)
    if name != "auto":
        return name
    return "bf16" if bf16_is_fast(device, flags) else "fp32"
