"""Classifier heads on sentence vectors: logistic regression or a small MLP, trained full-batch by L-BFGS."""

from __future__ import annotations

import math

import numpy as np
import torch

from .ngram import single_thread


def logreg_head(dim: int, hidden: int, generator: torch.Generator) -> torch.nn.Module:
    """Logistic regression ``[B, dim] -> [B, 1]``, zero-initialized (``hidden`` unused)."""
    head = torch.nn.Linear(dim, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


def mlp_head(dim: int, hidden: int, generator: torch.Generator) -> torch.nn.Module:
    """One hidden GELU layer of width ``hidden``: ``[B, dim] -> [B, 1]``."""
    head = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))
    for layer in (head[0], head[2]):
        bound = 1.0 / math.sqrt(layer.in_features)
        torch.nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
        torch.nn.init.zeros_(layer.bias)
    return head


def balanced_weights(y: torch.Tensor) -> torch.Tensor:
    """Per-example weights ``[N]`` that give both classes of ``y`` (0/1) equal total weight, mean 1."""
    pos = y.sum().clamp_min(1.0)
    neg = (len(y) - y.sum()).clamp_min(1.0)
    return torch.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg))


def train_head(head: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, l2: float, steps: int) -> None:
    """Full-batch, class-balanced BCE + L2 on weights, minimized by scipy's L-BFGS-B (deterministic).

    ``x [N, d]``, ``y [N]`` in {0, 1}. scipy's optimizer, not ``torch.optim.LBFGS``: the latter spends its time
    in thousands of tiny tensor ops, which crawl on a busy shared CPU.
    """
    import scipy.optimize
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    w = balanced_weights(y).double()
    head.double()
    params = list(head.parameters())
    xd, yd = x.double(), y.double()

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        vector_to_parameters(torch.from_numpy(theta), params)
        for p in params:
            p.grad = None
        logits = head(xd).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yd, weight=w)
        loss = loss + 0.5 * l2 * sum((p * p).sum() for n, p in head.named_parameters() if "weight" in n)
        loss.backward()
        grad = parameters_to_vector([p.grad for p in params])
        return float(loss.detach()), grad.numpy().copy()

    with torch.enable_grad(), single_thread():
        theta0 = parameters_to_vector(params).detach().numpy().copy()
        res = scipy.optimize.minimize(loss_grad, theta0, jac=True, method="L-BFGS-B",
                                      options={"maxiter": steps})
        vector_to_parameters(torch.from_numpy(res.x), params)
    head.float()
    for p in head.parameters():
        p.grad = None
