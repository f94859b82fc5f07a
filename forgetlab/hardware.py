"""What this machine's processor can do fast: its feature flags and whether it computes bf16 matmuls natively.

Shared by the prompt classifier's encoder precision (:mod:`forgetlab.eco.classify.precision`) and the grok
trainer's matmul precision (:mod:`forgetlab.grok.precision`): both use bf16 only where it is fast, because on
CPUs without bf16 units PyTorch emulates bf16 matmuls many times slower than fp32 (15x measured on an AVX2-only
AMD EPYC).
"""

from __future__ import annotations

from pathlib import Path

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


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The first CPU's model name ("unknown" where the file is missing or has none)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return "unknown"
    for line in text.splitlines():
        if line.split(":", 1)[0].strip() == "model name":
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine() -> dict[str, object]:
    """What a result file records about the machine that computed it: CPU model, whether it has bf16 units,
    cores and torch's thread count."""
    import os

    import torch

    return {"cpu": cpu_model(), "bf16_units": bf16_is_fast(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
