"""The prompt classifier's encoder precision: fp32, bf16, or ``auto`` (bf16 where the hardware runs it fast).

bf16 halves the encoder's memory traffic and, on CPUs with AMX or AVX-512 BF16 units (and CUDA GPUs with bf16
support), runs MiniLM about 2-3x faster; on other CPUs PyTorch emulates bf16 matmuls and they run many times
slower than fp32 (measured here on an AVX2-only EPYC), so ``auto`` keeps fp32 there. The precision is resolved
once, when a classifier is fitted, and saved with it: its thresholds are calibrated in the precision that serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import check_choice

PRECISIONS = ("auto", "fp32", "bf16")
"""Allowed values of ``ClassifierConfig.precision``; a fitted classifier records fp32 or bf16."""



def torch_dtype(precision: str) -> Any:
    """The torch dtype of a resolved precision (``fp32`` or ``bf16``); torch is imported only here, so that the
    classifier's config stays importable without it."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]

BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
"""``/proc/cpuinfo`` flags of x86 units that compute bf16 matmuls natively."""


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The first CPU's feature flags (empty where the file is missing or has none)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.split(":", 1)[0].strip() in ("flags", "Features"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def bf16_is_fast(device: str = "cpu", flags: frozenset[str] | None = None) -> bool:
    """Whether ``device`` computes bf16 matmuls natively (CUDA: torch says; CPU: AMX or AVX-512 BF16 flags)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool((cpu_flags() if flags is None else flags) & BF16_CPU_FLAGS)


def resolve_precision(name: str, device: str = "cpu", flags: frozenset[str] | None = None) -> str:
    """``fp32`` or ``bf16`` for a :data:`PRECISIONS` value: ``auto`` is bf16 exactly where :func:`bf16_is_fast`."""
    check_choice("precision", name, PRECISIONS)
    if name != "auto":
        return name
    return "bf16" if bf16_is_fast(device, flags) else "fp32"
