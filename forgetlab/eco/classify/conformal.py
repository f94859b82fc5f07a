"""Split-conformal thresholds with finite-sample guarantees (Vovk et al. 2005; Angelopoulos & Bates 2021, Sec. 1).

Scores of held-out calibration prompts and of a new prompt from the same distribution are exchangeable, so the
rank of the new score among them is uniform. Two one-sided rules follow:

- upper (false-positive control): with ``k = ceil((n + 1)(1 - fpr))`` and ``t`` the k-th smallest of ``n``
  retain scores, ``P(score_new > t) <= 1 - k / (n + 1) <= fpr``.
- lower (miss control of a first stage): with ``j = floor((n + 1) * miss)`` and ``t`` the j-th smallest of
  ``n`` forget scores, ``P(score_new < t) <= j / (n + 1) <= miss``.
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import BadInput, check_range


def min_calibration_size(fpr: float) -> int:
    """Smallest ``n`` with ``ceil((n + 1)(1 - fpr)) <= n``: fewer retain scores cannot certify ``fpr``."""
    check_range("fpr", fpr, 0.0, 1.0, lo_open=True, hi_open=True)
    n = max(1, math.floor((1 - fpr) / fpr) - 1)
    while _rank_upper(n, fpr) > n:
        n += 1
    return n


def _rank_upper(n: int, fpr: float) -> int:
    # round before ceil so that e.g. (99 + 1) * 0.99 = 98.99999999999999 counts as 99
    return math.ceil(round((n + 1) * (1 - fpr), 9))


def conformal_upper_threshold(scores: np.ndarray, fpr: float, field: str = "retain prompts") -> float:
    """Threshold ``t`` = the ``ceil((n+1)(1-fpr))``-th smallest score; flag a prompt when ``score > t``.

    Raises :class:`BadInput` naming how many calibration scores ``fpr`` needs when ``n`` is too small.
    """
    check_range("fpr", fpr, 0.0, 1.0, lo_open=True, hi_open=True)
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = s.size
    k = _rank_upper(n, fpr)
    if k > n:
        need = min_calibration_size(fpr)
        raise BadInput(field, f"{n} held-out for calibration",
                       f"at least {need} held-out retain prompts for fpr={fpr} "
                       "(add retain prompts, raise heldout_fraction or raise fpr)")
    return float(s[k - 1])


def conformal_lower_threshold(scores: np.ndarray, miss: float) -> float | None:
    """Threshold ``t`` = the ``floor((n+1)*miss)``-th smallest score (pass as negative when ``score < t``).

    Returns None when ``n`` is too small for ``miss`` (then nothing may be passed without a second look).
    """
    check_range("miss", miss, 0.0, 1.0, lo_open=True, hi_open=True)
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    j = math.floor(round((s.size + 1) * miss, 9))
    if j < 1:
        return None
    return float(s[j - 1])


def pac_min_calibration_size(fpr: float, delta: float) -> int:
    """Smallest ``n`` for which even the largest score certifies ``P(FPR > fpr) <= delta``:
    ``(1 - fpr)^n <= delta``."""
    check_range("fpr", fpr, 0.0, 1.0, lo_open=True, hi_open=True)
    check_range("delta", delta, 0.0, 1.0, lo_open=True, hi_open=True)
    return math.ceil(round(math.log(delta) / math.log(1 - fpr), 9))


def conformal_pac_threshold(scores: np.ndarray, fpr: float, delta: float,
                            field: str = "retain prompts") -> float:
    """Training-conditional threshold: with probability >= 1 - ``delta`` over the calibration draw, the
    false-positive rate of ``score > t`` is at most ``fpr`` (Vovk 2012, "Conditional validity of inductive
    conformal predictors"; Angelopoulos & Bates 2021, Sec. 6.1).

    With ``t`` the k-th smallest of ``n`` continuous scores, the conditional FPR is Beta(n + 1 - k, k)
    distributed; ``k`` is the smallest rank with ``BetaCDF(fpr; n + 1 - k, k) >= 1 - delta``. The marginal rule
    (:func:`conformal_upper_threshold`) only bounds the FPR averaged over calibration draws: one calibration
    set can leave a conditional FPR well above ``fpr`` (sd ~0.03 at n = 48, fpr = 0.05).
    """
    from scipy.stats import beta

    check_range("fpr", fpr, 0.0, 1.0, lo_open=True, hi_open=True)
    check_range("delta", delta, 0.0, 1.0, lo_open=True, hi_open=True)
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = s.size
    ks = np.arange(1, n + 1)
    ok = np.flatnonzero(beta.cdf(fpr, n + 1 - ks, ks) >= 1 - delta) if n else np.array([], dtype=int)
    if ok.size == 0:
        need = pac_min_calibration_size(fpr, delta)
        raise BadInput(field, f"{n} held-out for calibration",
                       f"at least {need} held-out retain prompts for fpr={fpr} with confidence "
                       f"1-delta={1 - delta:g} (add retain prompts, raise heldout_fraction, fpr or delta)")
    return float(s[ks[ok[0]] - 1])
