"""Wire encoding of prompt embeddings for vLLM's ``prompt_embeds`` field.

vLLM's OpenAI-compatible server (``vllm serve --enable-prompt-embeds``) takes prompt embeddings as a base64
string of a ``torch.save``-serialized tensor of shape ``[T, d]`` (vLLM docs, "Prompt Embedding Inputs";
``vllm.utils.serial_utils.tensor2base64``). That is vLLM's required format, so we produce exactly it; the
decoder here exists for tests and for tools that inspect payloads, and only ever loads with
``weights_only=True``.
"""

from __future__ import annotations

import base64
import binascii
import io

import torch

from ....errors import BadInput


def encode_prompt_embeds(embeds: torch.Tensor) -> str:
    """Encode ``embeds`` ``[T, d]`` as vLLM expects: base64 (standard alphabet) of ``torch.save`` bytes.

    The tensor is detached, moved to CPU and made contiguous first so the payload carries no autograd
    state, device or storage views (a view of a larger tensor would otherwise serialize the whole storage).
    """
    if not isinstance(embeds, torch.Tensor):
        raise BadInput("prompt_embeds", type(embeds).__name__, "a torch.Tensor of shape [T, d]")
    if embeds.dim() != 2 or embeds.shape[0] == 0:
        raise BadInput("prompt_embeds", tuple(embeds.shape), "a tensor of shape [T, d] with T >= 1")
    if not embeds.is_floating_point():
        raise BadInput("prompt_embeds", str(embeds.dtype), "a floating-point tensor")
    clean = embeds.detach().to("cpu").contiguous().clone()
    buf = io.BytesIO()
    torch.save(clean, buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_prompt_embeds(payload: str) -> torch.Tensor:
    """Inverse of :func:`encode_prompt_embeds`; loads with ``weights_only=True`` (never arbitrary pickles)."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise BadInput("prompt_embeds", "<not base64>", "base64 of a torch.save'd tensor") from None
    try:
        out = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises several types for damaged or unsafe payloads
        raise BadInput("prompt_embeds", f"<undecodable: {type(exc).__name__}>",
                       "a torch.save'd tensor loadable with weights_only=True") from None
    if not isinstance(out, torch.Tensor):
        raise BadInput("prompt_embeds", type(out).__name__, "a tensor")
    return out
