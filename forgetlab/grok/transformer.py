"""The authors' encoder-only Transformer (official `utils/models.py`, `EncoderOnlyTransformers` with s = 1), batched
over a leading runs axis.

One block, no causal mask, two input tokens (m, n) with learned positions, logits read at the last position:

    x      = drop(wte[m, n] + wpe)                                   [R, B, 2, d]
    x      = x + drop(o(drop(softmax(q k^T / d_head)) v))            attention on LN1(x), 4 heads
    x      = x + drop(proj(act(fc(LN2(x)))))                         MLP of width 4d
    logits = head(LNf(x))[:, :, -1] / d                              [R, B, p]

What makes it the authors' model and not a textbook one: attention logits scaled by ``1/d_head`` (not
``1/sqrt(d_head)``) and the output multiplied by ``1/d`` (their ``s = 1``, the muP-like scaling the paper uses;
under MSE the 1/d factor matters), dropout at the four places their code puts it (embeddings, attention
weights, after the attention projection, after the MLP), LayerNorm optional (``if_ln``), no biases, skip weight
``mu = 1``, no weight tying. Initialization replays their random stream: construction-time defaults
(``nn.Embedding``: N(0, 1); ``nn.Linear``: U(-1/sqrt(fan_in), 1/sqrt(fan_in))) drawn in module order, then
their ``_init_weights`` (embeddings N(0, 1), linear maps N(0, 1/fan_in)) in ``Module.apply`` order, so a
generator seeded like ``torch.manual_seed(s)`` gives their initial weights for seed s.

Only the last position's output is read, so the block computes queries, the attention output, the MLP and the
final LayerNorm at that position only (keys and values at both): the logits equal the full computation's.

Their code builds the AdamW parameter groups in one of two ways (:func:`param_group_scales`): by default
(``timm.param_groups_weight_decay``) every matrix, embeddings included, is decayed at the one learning rate and
LayerNorm weights and biases are not (:data:`NO_DECAY`); with their ``rescale_optim`` (the muP optimizer of the
s = 1 scaling) each matrix's learning rate is scaled by its fan-in and embeddings are not decayed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .config import ACTIVATIONS

N_EMBD = 128  # the paper's d_embed
N_HEAD = 4
WIDE_FACTOR = 4  # MLP width 4d
N_POS = 2  # two input tokens
LN_EPS = 1e-5  # nn.LayerNorm default
LN_NAMES = ("ln1", "ln2", "lnf")
NO_DECAY = tuple(f"{ln}_{k}" for ln in LN_NAMES for k in ("weight", "bias"))
# Matrices in nn.Linear layout [out, in] (x @ W^T), in the order their construction draws them.
LINEAR_SHAPES = (("qkv", 3, 1), ("o", 1, 1), ("fc", WIDE_FACTOR, 1), ("proj", 1, WIDE_FACTOR))
DROPOUT_SITES = ("emb", "attn", "resid", "mlp")


def param_group_scales(names: Sequence[str], scheme: str, d: int = N_EMBD) -> dict[str, tuple[float, bool]]:
    """Each parameter's (learning-rate factor, decayed) under ``scheme`` (``TrainConfig.param_groups``).

    ``standard``: factor 1, decayed unless a LayerNorm parameter. ``mup`` (their ``rescale_optim`` with s = 1, so
    ``n_embd ** (s/2 - 1/2) = 1``): qkv and o at lr/d, fc at lr/(2d) (times ``wide_factor ** -1/2``), proj at
    lr/(4d), head at lr, all decayed; embeddings at lr and LayerNorm at lr, neither decayed.
    """
    if scheme == "standard":
        return {k: (1.0, k not in NO_DECAY) for k in names}
    mup = {"qkv": 1.0 / d, "o": 1.0 / d, "fc": WIDE_FACTOR ** -0.5 / d, "proj": 1.0 / (WIDE_FACTOR * d),
           "head": 1.0}
    return {k: (mup.get(k, 1.0), k in mup) for k in names}


def init_transformer_weights(p: int, generator: torch.Generator, layernorm: bool = False,
                             d: int = N_EMBD) -> dict[str, torch.Tensor]:
    """One run's initial parameters, drawn from ``generator`` in the official code's order (module docstring).

    Returns ``wte [p, d]``, ``wpe [2, d]``, ``qkv [3d, d]``, ``o [d, d]``, ``fc [4d, d]``, ``proj [d, 4d]``,
    ``head [p, d]`` and, with ``layernorm``, ``ln1/ln2/lnf`` weights (ones) and biases (zeros) ``[d]``.
    """
    shapes = {"wte": (p, d), "wpe": (N_POS, d)}
    shapes.update({name: (a * d, b * d) for name, a, b in LINEAR_SHAPES})
    shapes["head"] = (p, d)
    w = {name: torch.empty(shape) for name, shape in shapes.items()}
    for name in shapes:  # construction: nn.Embedding normal_, nn.Linear kaiming_uniform_(a=sqrt(5))
        if name in ("wte", "wpe"):
            w[name].normal_(0.0, 1.0, generator=generator)
        else:
            bound = 1.0 / math.sqrt(shapes[name][1])
            w[name].uniform_(-bound, bound, generator=generator)
    for name in shapes:  # _init_weights via Module.apply: same order
        std = 1.0 if name in ("wte", "wpe") else 1.0 / math.sqrt(shapes[name][1])
        w[name].normal_(0.0, std, generator=generator)
    if layernorm:
        for ln in LN_NAMES:
            w[f"{ln}_weight"], w[f"{ln}_bias"] = torch.ones(d), torch.zeros(d)
    return w


def stack_runs(weights: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-run parameter dicts -> one dict of ``[R, ...]`` tensors (contiguous)."""
    return {k: torch.stack([w[k] for w in weights]).contiguous() for k in weights[0]}


def draw_dropout_masks(R: int, B: int, rates: Sequence[float], gens: Sequence[torch.Generator],
                       n_rows: Sequence[int] | None = None, d: int = N_EMBD,
                       heads: int = N_HEAD) -> dict[str, torch.Tensor] | None:
    """Scaled dropout masks of the four sites, each run's from its own generator in a fixed order.

    ``emb [R, B, 2, d]``, ``attn [R, B, heads, 2]`` (the last query's attention row), ``resid [R, B, d]`` and
    ``mlp [R, B, d]`` (the last position's branches). Run r draws only its first ``n_rows[r]`` rows (its valid
    rows), so its random stream does not depend on the other runs of the batch. None when no run uses dropout.
    """
    if not any(rates):
        return None
    rows = list(n_rows) if n_rows is not None else [B] * R
    shapes = {"emb": (B, N_POS, d), "attn": (B, heads, N_POS), "resid": (B, d), "mlp": (B, d)}
    masks = {k: torch.ones(R, *s) for k, s in shapes.items()}
    for r, q in enumerate(rates):
        if q > 0:
            for k in DROPOUT_SITES:
                masks[k][r, :rows[r]].bernoulli_(1 - q, generator=gens[r]).mul_(1.0 / (1 - q))
    return masks


def _layer_norm(x: torch.Tensor, params: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """LayerNorm over the last axis with per-run affine ``[R, d]`` (identity when the model has none)."""
    if f"{name}_weight" not in params:
        return x
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    y = F.layer_norm(x, x.shape[-1:], eps=LN_EPS)
    return y * params[f"{name}_weight"].view(shape) + params[f"{name}_bias"].view(shape)


def _linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x [R, ..., in] @ w[R, out, in]^T -> [R, ..., out]`` (one batched matmul)."""
    R, inner = x.shape[0], x.shape[-1]
    y = torch.bmm(x.reshape(R, -1, inner), w.transpose(1, 2))
    return y.view(*x.shape[:-1], w.shape[1])


def _attention(h: torch.Tensor, params: dict[str, torch.Tensor], masks: dict | None,
               heads: int) -> torch.Tensor:
    """The last query's attention output ``[R, B, d]`` from ``h [R, B, 2, d]`` (keys/values at both positions)."""
    R, B, T, d = h.shape
    dh = d // heads
    w_q, w_kv = params["qkv"][:, :d], params["qkv"][:, d:]
    q = _linear(h[:, :, -1], w_q).view(R, B, heads, dh)
    k, v = _linear(h, w_kv).view(R, B, T, 2, heads, dh).unbind(3)
    att = torch.softmax(torch.einsum("rbhe,rbthe->rbht", q, k) / dh, dim=-1)  # 1/d_head (s = 1)
    if masks is not None:
        att = att * masks["attn"]
    return torch.einsum("rbht,rbthe->rbhe", att, v).reshape(R, B, d)


def transformer_forward(params: dict[str, torch.Tensor], M: torch.Tensor, Nn: torch.Tensor, act: str,
                        masks: dict[str, torch.Tensor] | None = None, heads: int = N_HEAD) -> torch.Tensor:
    """Logits ``[R, B, p]`` at the last position for operands ``M, Nn [R, B]`` (see the module docstring).

    ``params`` hold ``[R, ...]`` tensors (:func:`stack_runs`); ``masks`` from :func:`draw_dropout_masks`.
    """
    wte = params["wte"]
    R, p, d = wte.shape
    base = (torch.arange(R) * p)[:, None]
    tok = F.embedding(torch.stack([M + base, Nn + base], dim=2), wte.reshape(R * p, d))  # [R, B, 2, d]
    x = tok + params["wpe"][:, None]
    if masks is not None:
        x = x * masks["emb"]
    y = _linear(_attention(_layer_norm(x, params, "ln1"), params, masks, heads), params["o"])
    if masks is not None:
        y = y * masks["resid"]
    x_last = x[:, :, -1] + y
    z = _linear(ACTIVATIONS[act](_linear(_layer_norm(x_last, params, "ln2"), params["fc"])), params["proj"])
    if masks is not None:
        z = z * masks["mlp"]
    x_last = x_last + z
    return _linear(_layer_norm(x_last, params, "lnf"), params["head"]) / d


def transformer_ipr_views(params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U, V, W) analogues for IPR, one "neuron" per embedding dimension: the token embedding's columns (as both
    U and V, ``[R, d, p]``) and the head's columns (``[R, p, d]``)."""
    emb = params["wte"].transpose(1, 2)
    return emb, emb, params["head"]
