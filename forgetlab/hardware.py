"""What this machine's processor can do fast: its feature flags and whether it computes bf16 matmuls natively.

Shared by the prompt classifier's encoder precision (:mod:`forgetlab.eco.classify.precision`) and the grok
trainer's matmul precision (:mod:`forgetlab.grok.precision`): both use bf16 only where it is fast, because on
CPUs without bf16 units PyTorch emulates bf16 matmuls many times slower than fp32 (15x measured on an AVX2-only
AMD EPYC).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
"""``/proc/cpuinfo`` flags of x86 units that compute bf16 matmuls natively."""


def _cpuinfo_field(cpuinfo: str | Path, keys: tuple[str, ...]) -> str | None:
    """The first CPU's value of the first of ``keys`` present in a ``/proc/cpuinfo`` file (None where the file
    is missing or has none)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return None


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The first CPU's feature flags (empty where the file is missing or has none)."""
    return frozenset((_cpuinfo_field(cpuinfo, ("flags", "Features")) or "").split())


def bf16_is_fast(device: str = "cpu", flags: frozenset[str] | None = None) -> bool:
    """Whether ``device`` computes bf16 matmuls natively (CUDA: torch says; CPU: AMX or AVX-512 BF16 flags)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool((cpu_flags() if flags is None else flags) & BF16_CPU_FLAGS)


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere), or ``unknown``."""
    return _cpuinfo_field(cpuinfo, ("model name",)) or platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


MAX_THREADS = 1024  # beyond any machine this runs on; torch itself overflows past a C long long


def check_threads(threads: int, field: str = "threads") -> None:
    """Refuse a ``--threads`` value outside [0, :data:`MAX_THREADS`] (:class:`BadInput` naming ``field``)."""
    from .errors import BadInput

    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= MAX_THREADS:
        raise BadInput(field, threads, f"an integer in [0, {MAX_THREADS}] (0 = torch default)")


def set_torch_threads(threads: int, field: str = "threads") -> None:
    """Apply a ``--threads`` option to this process (:func:`check_threads` first): 0 keeps torch's default."""
    check_threads(threads, field)
    if threads:
        import torch

        torch.set_num_threads(threads)


def machine() -> dict[str, object]:
    """What a result file records about the machine that computed it: CPU model, whether it has bf16 units, the
    cores this process may use, torch's thread count and the load average."""
    import torch

    return {"cpu": cpu_model(), "bf16_units": bf16_is_fast(), "cores": usable_cores(),
            "torch_threads": torch.get_num_threads(), "load_average": load_average()}
