"""Opt-in bf16 matmuls for grok training (``TrainConfig.matmul_precision``): fp32 stays the exact default.

With ``bf16`` every matrix product of a training step (the MLP kernel's batched matmuls, the Transformer's
linear maps and attention products) takes its operands rounded to bfloat16 and returns its bf16 result
widened back to fp32; everything else (gathers, activations, losses, AdamW) stays fp32. That is the numerics of
a bf16 GEMM: about 3e-3 relative error per product instead of 1e-7. It pays only where the hardware computes
bf16 natively (AVX-512 BF16 or AMX CPUs, CUDA GPUs); elsewhere PyTorch emulates it many times slower than
fp32, so training refuses it there.

One place applies it to every architecture: a ``TorchFunctionMode`` that intercepts the product functions for
the duration of :func:`train_many <forgetlab.grok.train.train_many>`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import BadInput
from ..hardware import bf16_is_fast
from .config import MATMUL_PRECISIONS

_OPERANDS = {torch.bmm: (0, 1), torch.mm: (0, 1), torch.matmul: (0, 1), torch.Tensor.__matmul__: (0, 1),
             torch.Tensor.matmul: (0, 1), torch.Tensor.bmm: (0, 1), torch.baddbmm: (1, 2), torch.addmm: (1, 2),
             F.linear: (0, 1)}
"""Product functions and the positions of their two matrix operands (the rest of their arguments stay)."""
_IN_PLACE = {torch.Tensor.baddbmm_: torch.baddbmm, torch.Tensor.addmm_: torch.addmm}
"""In-place products, computed out of place in bf16 and copied back into ``self``."""


def _bf16(x: Any) -> Any:
    """``x`` as bf16 when it is an fp32 tensor, else unchanged."""
    return x.to(torch.bfloat16) if isinstance(x, torch.Tensor) and x.dtype == torch.float32 else x


class Bf16Matmuls(TorchFunctionMode):
    """Within this mode every fp32 matrix product runs on bf16 operands and returns fp32 (see module doc)."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _IN_PLACE:
            target = args[0]
            result = _IN_PLACE[func](*[_bf16(a) for a in args], **kwargs)
            return target.copy_(result)
        where = _OPERANDS.get(func)
        if where is None or not any(isinstance(args[i], torch.Tensor) and args[i].dtype == torch.float32
                                    for i in where):
            return func(*args, **kwargs)
        out = kwargs.pop("out", None)
        cast = [_bf16(a) if i in where or func is F.linear else a for i, a in enumerate(args)]
        if kwargs.get("bias") is not None:
            kwargs["bias"] = _bf16(kwargs["bias"])
        result = func(*cast, **kwargs).float()
        return result if out is None else out.copy_(result)


def check_matmul_precision(precision: str, device: str = "cpu") -> None:
    """Refuse ``bf16`` where ``device`` has no native bf16 matmuls (:class:`BadInput` naming the field)."""
    if precision not in MATMUL_PRECISIONS:
        raise BadInput("matmul_precision", precision, "one of " + ", ".join(MATMUL_PRECISIONS))
    if precision == "bf16" and not bf16_is_fast(device):
        raise BadInput("matmul_precision", precision, "fp32 on this machine (bf16 needs a CPU with AVX-512 BF16 "
                       "or AMX units, or a CUDA GPU; emulated bf16 would be many times slower than fp32)")


@contextlib.contextmanager
def matmul_precision(precision: str, device: str = "cpu") -> Iterator[None]:
    """Run the block's matrix products in ``precision`` (fp32: unchanged; bf16: :class:`Bf16Matmuls`)."""
    check_matmul_precision(precision, device)
    if precision == "fp32":
        yield
        return
    with Bf16Matmuls():
        yield
