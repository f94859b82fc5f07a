"""Models: the 2-layer MLP f = W phi(U e_m + V e_n) (paper Eq. 1, 5), deeper MLPs' initialization and the
authors' Transformer (single-run reference; the batched one is :mod:`forgetlab.grok.transformer`).

Because the input is two one-hot vectors, ``U e_m + V e_n`` is the sum of two columns: we gather them
(an embedding lookup) instead of multiplying by one-hot vectors; ``MLP.forward_onehot`` keeps the dense
official formulation so tests can prove both give the same numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_choice
from .config import ACTIVATIONS, check_batchnorm_placement


def quadratic(a: torch.Tensor) -> torch.Tensor:
    """phi(a) = a^2, the paper's activation."""
    return a * a


def init_std(width: int) -> float:
    """sigma = 0.5 / (2N)^(1/3) for both layers (official `fcn`: std = 0.25**0.5 / (2N)**(1/3))."""
    return 0.5 / (2 * width) ** (1.0 / 3.0)


def init_mlp_weights(p: int, width: int, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Initial U ``[N, p]``, V ``[N, p]``, W ``[p, N]`` drawn from ``generator``.

    The draws follow the official code's random stream: ``nn.Linear(2p, N)`` and ``nn.Linear(N, p)`` first
    consume uniform draws for their default init, then both weights are re-drawn from N(0, sigma^2). With a
    generator seeded like the official ``torch.manual_seed(1)`` this gives the paper's exact initial weights.
    """
    std = init_std(width)
    fc1 = torch.empty(width, 2 * p)
    fc2 = torch.empty(p, width)
    b1, b2 = 1.0 / math.sqrt(2 * p), 1.0 / math.sqrt(width)  # kaiming_uniform(a=sqrt(5)) bounds
    fc1.uniform_(-b1, b1, generator=generator)
    fc2.uniform_(-b2, b2, generator=generator)
    fc1.normal_(0.0, std, generator=generator)
    fc2.normal_(0.0, std, generator=generator)
    return fc1[:, :p].contiguous(), fc1[:, p:].contiguous(), fc2.contiguous()


def init_deep_weights(p: int, width: int, depth: int, generator: torch.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Initial U ``[N, p]``, V ``[N, p]``, hidden maps ``[N, N]`` (depth - 2 of them, ``[out, in]``) and
    W ``[p, N]`` of a deeper MLP, drawn from ``generator``.

    The official code's only deep MLP (`fcn_norm_only`) is followed: ``nn.Linear`` layers without bias
    constructed in order (consuming their default uniform draws), then re-drawn with He initialization
    (``kaiming_normal_``, fan_in, ReLU gain: std = sqrt(2 / fan_in)), the last layer halved.
    """
    shapes = [(width, 2 * p)] + [(width, width)] * (depth - 2) + [(p, width)]
    mats = [torch.empty(s) for s in shapes]
    for m in mats:
        bound = 1.0 / math.sqrt(m.shape[1])
        m.uniform_(-bound, bound, generator=generator)
    for m in mats:
        m.normal_(0.0, math.sqrt(2.0 / m.shape[1]), generator=generator)
    mats[-1].mul_(0.5)
    fc1 = mats[0]
    return fc1[:, :p].contiguous(), fc1[:, p:].contiguous(), [m.contiguous() for m in mats[1:-1]], mats[-1]


def scale_initial_weights(w: dict[str, torch.Tensor], init_scale: float) -> dict[str, torch.Tensor]:
    """``w`` with every matrix and embedding times ``init_scale`` (``TrainConfig.init_scale``); norm layers'
    weights and biases (names starting ``ln`` or ``bn``) keep their 1 and 0."""
    if init_scale == 1.0:
        return w
    return {k: v if k.startswith(("ln", "bn")) else v * init_scale for k, v in w.items()}


class MLP(nn.Module):
    """Single-run MLP with parameters U ``[N, p]``, V ``[N, p]``, W ``[p, N]`` (no biases).

    Dropout acts on the pre-activation (before phi); BatchNorm1d acts after phi (``batchnorm_placement``
    "post", paper Eq. 5) or on the pre-activation after dropout ("pre").
    """

    def __init__(self, p: int, width: int = 500, act: str = "quadratic", dropout: float = 0.0,
                 batchnorm: bool = False, generator: torch.Generator | None = None,
                 batchnorm_placement: str = "post") -> None:
        super().__init__()
        check_choice("act", act, ACTIVATIONS)
        gen = generator if generator is not None else torch.Generator().manual_seed(1)
        U, V, W = init_mlp_weights(p, width, gen)
        self.p, self.width, self.act = p, width, act
        self.U, self.V, self.W = nn.Parameter(U), nn.Parameter(V), nn.Parameter(W)
        self.drop = nn.Dropout(dropout)
        check_batchnorm_placement(batchnorm, batchnorm_placement)
        self.bn = nn.BatchNorm1d(width) if batchnorm else None
        self.bn_pre = batchnorm_placement == "pre"

    def _head(self, a: torch.Tensor) -> torch.Tensor:
        a = self.drop(a)
        if self.bn is not None and self.bn_pre:
            a = self.bn(a)
        h = ACTIVATIONS[self.act](a)
        if self.bn is not None and not self.bn_pre:
            h = self.bn(h)
        return h @ self.W.T

    def forward(self, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, p]`` for operand ids m, n ``[B]`` via a gather of U's and V's columns."""
        return self._head(F.embedding(m, self.U.T) + F.embedding(n, self.V.T))

    def forward_onehot(self, x: torch.Tensor) -> torch.Tensor:
        """The dense official formulation: x ``[B, 2p]`` (two one-hot vectors) times ``[U V]^T``."""
        return self._head(x @ torch.cat([self.U, self.V], dim=1).T)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors in the layout written to ``model.safetensors``."""
        out = {"U": self.U.detach(), "V": self.V.detach(), "W": self.W.detach()}
        if self.bn is not None:
            out.update(bn_weight=self.bn.weight.detach(), bn_bias=self.bn.bias.detach(),
                       bn_running_mean=self.bn.running_mean, bn_running_var=self.bn.running_var)
        return out


class Transformer(nn.Module):
    """Single-run reference of the authors' encoder-only Transformer, written as their modules are (embeddings,
    one block of full-sequence attention and MLP over both positions, optional LayerNorms, scaled head); the
    logits are those of the last position. Training uses the batched :mod:`forgetlab.grok.transformer`, which
    tests prove equal to this module.
    """

    def __init__(self, p: int, act: str = "relu", dropout: float = 0.0, layernorm: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        from .transformer import N_EMBD, N_HEAD, init_transformer_weights

        check_choice("act", act, ACTIVATIONS)
        gen = generator if generator is not None else torch.Generator().manual_seed(1)
        w = init_transformer_weights(p, gen, layernorm)
        self.p, self.d, self.heads, self.act, self.layernorm = p, N_EMBD, N_HEAD, act, layernorm
        self.weights = nn.ParameterDict({k: nn.Parameter(v) for k, v in w.items()})
        self.drop = nn.Dropout(dropout)

    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if not self.layernorm:
            return x
        return F.layer_norm(x, (self.d,), self.weights[f"{name}_weight"], self.weights[f"{name}_bias"])

    def forward(self, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, p]`` for operand ids m, n ``[B]`` (the last position of ``[B, 2, p]``)."""
        w = self.weights
        x = self.drop(w["wte"][torch.stack([m, n], dim=1)] + w["wpe"])  # [B, 2, d]
        B, T, d = x.shape
        q, k, v = (self._ln(x, "ln1") @ w["qkv"].T).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))  # [B, h, T, dh]
        att = self.drop(torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads), dim=-1))
        x = x + self.drop((att @ v).transpose(1, 2).reshape(B, T, d) @ w["o"].T)
        x = x + self.drop(ACTIVATIONS[self.act](self._ln(x, "ln2") @ w["fc"].T) @ w["proj"].T)
        return (self._ln(x, "lnf") @ w["head"].T / d)[:, -1]
