"""Where and how a bench ran: CPU model, cores, torch threads, torch version, load average, date.

Training and fitting on CPU change with the thread count and the machine (float reductions run in another
order), so every ``results.json`` records them beside its numbers, and the rendered docs print them.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from ...hardware import cpu_model, load_average

__all__ = ["cpu_model", "load_average", "machine_record"]


def machine_record() -> dict[str, Any]:
    """CPU model, logical cores, torch threads and version, load average and the UTC date, now."""
    import torch

    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "platform": platform.platform(), "load_average": load_average(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
