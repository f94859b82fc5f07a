"""Where and in which precision a language model runs: device, dtype and a ``device_map``, stated once.

:class:`Placement` is the one set of these settings for every command that loads a causal LM (``eco fit``,
``generate``, ``serve``, ``evaluate``, the lm-evaluation-harness model): each field is a command-line option
(:func:`forgetlab.options.config_command`), validated here without importing torch so a bad value answers at
once. :func:`forgetlab.eco.base_model.load_base_model` applies it.

- ``device``: ``auto`` (the first CUDA device when there is one, else the CPU), ``cpu``, ``cuda``, ``cuda:N``
  or ``mps``;
- ``dtype``: ``auto`` (the precision the checkpoint was saved in), ``float32``, ``bfloat16`` or ``float16``;
  ECO's corruption is applied to the embeddings in this dtype;
- ``device_map``: passed to ``from_pretrained`` for a model that does not fit one device (``auto``,
  ``balanced``, ``sequential``, or a JSON object ``{"module": device}``); it replaces ``device``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import BadInput
from ..options import setting

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Placement:
    """Device, dtype and device map of a loaded causal LM (each a CLI option of the commands that load one)."""

    device: str = setting("auto", "Device of the model: auto (CUDA when available, else CPU), cpu, cuda, "
                                  "cuda:N or mps.")
    dtype: str = setting("auto", "Precision of the model's weights and of the corruption: auto (as saved), "
                                 "float32, bfloat16 or float16.", choices=DTYPES)
    device_map: str = setting("", "Spread a model too large for one device: auto, balanced, sequential or a "
                                  "JSON object {module: device} (passed to from_pretrained; replaces --device).")

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise BadInput("device", self.device, "auto, cpu, cuda, cuda:N or mps")
        if self.dtype not in DTYPES:
            raise BadInput("dtype", self.dtype, ", ".join(DTYPES))
        if self.device_map:
            self.parsed_device_map()
            if self.device not in ("auto",):
                raise BadInput("device", self.device, "auto when --device-map is given (the map places the model)")

    def parsed_device_map(self) -> str | dict[str, Any] | None:
        """The ``device_map`` argument for ``from_pretrained``: None, a strategy name, or a dict."""
        if not self.device_map:
            return None
        if self.device_map in DEVICE_MAPS:
            return self.device_map
        try:
            value = json.loads(self.device_map)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict) or not value:
            raise BadInput("device_map", self.device_map,
                           ", ".join(DEVICE_MAPS) + ' or a JSON object like {"": "cuda:0"}')
        return value

    def torch_dtype(self) -> Any:
        """The ``torch.dtype`` to load with, or ``"auto"`` (imports torch)."""
        import torch

        return "auto" if self.dtype == "auto" else getattr(torch, self.dtype)

    def torch_device(self) -> str:
        """The device to move the model to when no device map is given (``auto`` resolved; imports torch)."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda"):
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            index = int(self.device.partition(":")[2] or 0)
            if index >= count:
                raise BadInput("device", self.device, f"cpu or auto here: {count} CUDA device(s) visible to torch "
                               f"{torch.__version__}")
        elif self.device == "mps" and not torch.backends.mps.is_available():
            raise BadInput("device", self.device, "cpu or auto here: no MPS device")
        return self.device

    def record(self) -> dict[str, str]:
        """The settings as given, for run records."""
        return {"device": self.device, "dtype": self.dtype, "device_map": self.device_map}


CPU = Placement(device="cpu")
"""The CPU in the checkpoint's dtype (tests, tiny models)."""
