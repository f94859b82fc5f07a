"""Inverse participation ratio (IPR) of Fourier spectra and the analytic periodic solution.

IPR, paper Eq. 3-4 with the official code's convention (`calculate_ipr(|rfft(x)|, r=2)`): take the magnitude
of the one-sided real FFT of a weight vector over the p residues (floor(p/2)+1 coefficients, DC kept) and
compute ``sum |x|^4 / (sum |x|^2)^2``. A pure cosine scores 1; a one-hot vector 1/(floor(p/2)+1); an i.i.d.
Gaussian vector about 0.04 at p=97. A hidden neuron k is described by row k of U, row k of V and column k of
W; its IPR is the mean of the three, and the network's IPR is the mean over neurons. In a deeper MLP the input
and output layers hold different neurons (:func:`layered_neuron_ipr`).
"""

from __future__ import annotations

import math

import torch


def ipr(x: torch.Tensor) -> torch.Tensor:
    """IPR of the Fourier spectrum of each vector along the last axis: ``[..., p] -> [...]``.

    An all-zero vector (a pruned or fully decayed neuron) has no spectrum; it scores 0.
    """
    mag2 = torch.fft.rfft(x.to(torch.float64), dim=-1).abs().square()
    num = mag2.square().sum(-1)
    den = mag2.sum(-1).square()
    out = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(den))
    return out.to(torch.float32)


def neuron_ipr(U: torch.Tensor, V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Per-neuron IPR, mean over U's row, V's row and W's column.

    Shapes: U, V ``[..., N, p]``, W ``[..., p, N]`` (any leading runs axes) -> ``[..., N]``.
    """
    return (ipr(U) + ipr(V) + ipr(W.transpose(-1, -2))) / 3.0


def layered_neuron_ipr(U: torch.Tensor, V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Per-neuron IPR of a deeper MLP, whose input and output layers hold different neurons: the first-layer
    neurons (mean of U's and V's rows) followed by the last-layer neurons (W's columns).

    Shapes: U, V ``[..., N, p]``, W ``[..., p, N]`` -> ``[..., 2N]``; the network's IPR is the mean.
    """
    return torch.cat([(ipr(U) + ipr(V)) / 2.0, ipr(W.transpose(-1, -2))], dim=-1)


def mean_ipr(U: torch.Tensor, V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Network IPR: mean of :func:`neuron_ipr` over neurons, ``[...]``."""
    return neuron_ipr(U, V, W).mean(-1)


def analytic_solution(p: int, width: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gromov (2023) periodic weights for modular addition with a quadratic activation.

    U_ki = A cos(2 pi s(k) i / p + phi_u(k)), V_kj = A cos(2 pi s(k) j / p + phi_v(k)),
    W_qk = A cos(-2 pi s(k) q / p - phi_u(k) - phi_v(k)), A = (2/N)^(1/3); phases uniform in [0, 2 pi).
    Frequencies s(k) cover 1..(p-1)/2 evenly in a random order (so every frequency gets about N/((p-1)/2)
    neurons, which is what makes the cross terms cancel). Returns U ``[N, p]``, V ``[N, p]``, W ``[p, N]``.
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    n_freq = (p - 1) // 2
    sigma = (torch.randperm(width, generator=gen) % n_freq + 1).to(torch.float64)  # [N]
    phi_u = torch.rand(width, generator=gen, dtype=torch.float64) * 2 * math.pi
    phi_v = torch.rand(width, generator=gen, dtype=torch.float64) * 2 * math.pi
    amp = (2.0 / width) ** (1.0 / 3.0)
    i = torch.arange(p, dtype=torch.float64)
    theta = 2 * math.pi * sigma[:, None] * i[None, :] / p  # [N, p]
    U = amp * torch.cos(theta + phi_u[:, None])
    V = amp * torch.cos(theta + phi_v[:, None])
    W = amp * torch.cos(-theta - phi_u[:, None] - phi_v[:, None]).T  # [p, N]
    return U.float().contiguous(), V.float().contiguous(), W.float().contiguous()


def ipr_stats(neuron_ipr: torch.Tensor | None) -> dict[str, float]:
    """Summary statistics of per-neuron IPRs ``[N]``: median, 10%/90% quantiles, fraction above 0.5."""
    if neuron_ipr is None:
        return {}
    x = torch.as_tensor(neuron_ipr, dtype=torch.float64).flatten()
    if x.numel() == 0:
        return {}
    q = torch.quantile(x, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {"ipr_median": float(q[1]), "ipr_q10": float(q[0]), "ipr_q90": float(q[2]),
            "ipr_frac_above_half": float((x > 0.5).double().mean())}
