"""Models: the 2-layer MLP f = W phi(U e_m + V e_n) (paper Eq. 1, 5) and a small Transformer.

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
from .config import ACTIVATIONS


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


class MLP(nn.Module):
    """Single-run MLP with parameters U ``[N, p]``, V ``[N, p]``, W ``[p, N]`` (no biases).

    Dropout acts on the pre-activation (before phi); BatchNorm1d acts after phi (post-BN, paper Eq. 5).
    """

    def __init__(self, p: int, width: int = 500, act: str = "quadratic", dropout: float = 0.0,
                 batchnorm: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_choice("act", act, ACTIVATIONS)
        gen = generator if generator is not None else torch.Generator().manual_seed(1)
        U, V, W = init_mlp_weights(p, width, gen)
        self.p, self.width, self.act = p, width, act
        self.U, self.V, self.W = nn.Parameter(U), nn.Parameter(V), nn.Parameter(W)
        self.drop = nn.Dropout(dropout)
        self.bn = nn.BatchNorm1d(width) if batchnorm else None

    def _head(self, a: torch.Tensor) -> torch.Tensor:
        h = ACTIVATIONS[self.act](self.drop(a))
        if self.bn is not None:
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
    """One pre-residual block (attention + MLP), no LayerNorm, learned positions, two input tokens;
    the logits are read out at the last position. ``d=128``, 4 heads, MLP width 4d, ReLU."""

    def __init__(self, p: int, d: int = 128, heads: int = 4, dropout: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        gen = generator if generator is not None else torch.Generator().manual_seed(1)
        self.p, self.d, self.heads, self.dropout = p, d, heads, dropout
        self.tok = nn.Parameter(torch.randn(p, d, generator=gen))
        self.pos = nn.Parameter(torch.randn(2, d, generator=gen))

        def lin(fan_out: int, fan_in: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(fan_out, fan_in, generator=gen) / math.sqrt(fan_in))

        self.qkv, self.o = lin(3 * d, d), lin(d, d)
        self.fc1, self.fc2 = lin(4 * d, d), lin(d, 4 * d)
        self.head = lin(p, d)

    def forward(self, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, p]`` for operand ids m, n ``[B]``."""
        x = self.tok[torch.stack([m, n], dim=1)] + self.pos  # [B, 2, d]
        B, T, d = x.shape
        q, k, v = (x @ self.qkv.T).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + att.transpose(1, 2).reshape(B, T, d) @ self.o.T
        x = x + torch.relu(x @ self.fc1.T) @ self.fc2.T
        return x[:, -1] @ self.head.T

    def ipr_views(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(U, V, W) analogues for IPR: the token embedding's columns (as both U and V) and the head's
        columns, one "neuron" per embedding dimension: ``[d, p], [d, p], [p, d]``."""
        emb = self.tok.detach().T.contiguous()
        return emb, emb, self.head.detach()
