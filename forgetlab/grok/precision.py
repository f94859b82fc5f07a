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

_PRODUCTS = frozenset({torch.bmm, torch.mm, torch.matmul, torch.einsum, torch.baddbmm, torch.addmm, F.linear,
                       torch.Tensor.__matmul__, torch.Tensor.matmul, torch.Tensor.bmm, torch.Tensor.mm,
                       torch.Tensor.baddbmm, torch.Tensor.addmm})
"""Product functions and methods: every fp32 tensor among their arguments (positional or keyword, ``out``
excepted) is rounded to bf16 (``einsum``: the Transformer's attention products)."""
_IN_PLACE = {torch.Tensor.baddbmm_: torch.baddbmm, torch.Tensor.addmm_: torch.addmm}
"""In-place products, computed out of place in bf16 and copied back into ``self`` (with ``beta=0`` the old
values are not read, so they are not converted either)."""


def _bf16(x: Any) -> Any:
    """``x`` as bf16 when it is an fp32 tensor, else unchanged."""
    return x.to(torch.bfloat16) if isinstance(x, torch.Tensor) and x.dtype == torch.float32 else x


def _has_fp32(args: Sequence[Any], kwargs: dict) -> bool:
    """Whether any argument (or a tensor in a list argument, as ``einsum(eq, [a, b])`` takes) is an fp32 tensor."""
    flat = [x for a in (*args, *kwargs.values()) for x in (a if isinstance(a, (list, tuple)) else (a,))]
    return any(isinstance(x, torch.Tensor) and x.dtype == torch.float32 for x in flat)


class Bf16Matmuls(TorchFunctionMode):
    """Within this mode every fp32 matrix product runs on bf16 operands and returns fp32 (see module doc)."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _IN_PLACE:
            target, rest = args[0], [_bf16(a) for a in args[1:]]
            dead = kwargs.get("beta", 1) == 0  # the old values are multiplied by 0: not read
            first = torch.empty_like(target, dtype=torch.bfloat16) if dead else _bf16(target)
            return target.copy_(_IN_PLACE[func](first, *rest, **{k: _bf16(v) for k, v in kwargs.items()}))
        if func not in _PRODUCTS or not _has_fp32(args, kwargs):
            return func(*args, **kwargs)
        out = kwargs.pop("out", None)
        cast = [[_bf16(x) for x in a] if isinstance(a, (list, tuple)) else _bf16(a) for a in args]
        result = func(*cast, **{k: _bf16(v) for k, v in kwargs.items()}).float()
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
