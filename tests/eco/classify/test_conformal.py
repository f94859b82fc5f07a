"""Split-conformal thresholds: the rank rule, the too-few-samples error, and the coverage it promises."""

from __future__ import annotations

import numpy as np
import pytest

from forgetlab.eco.classify.conformal import (
    conformal_lower_threshold,
    conformal_pac_threshold,
    conformal_upper_threshold,
    min_calibration_size,
    pac_min_calibration_size,
)
from forgetlab.errors import BadInput


def test_upper_threshold_is_the_conformal_rank():
    scores = np.arange(1.0, 20.0)  # n = 19, fpr = 0.05 -> k = ceil(20 * 0.95) = 19
    assert conformal_upper_threshold(scores[::-1], 0.05) == 19.0
    s = np.random.default_rng(0).normal(size=100)  # k = ceil(101 * 0.9) = 91
    assert conformal_upper_threshold(s, 0.1) == np.sort(s)[90]


@pytest.mark.parametrize(("fpr", "need"), [(0.01, 99), (0.05, 19), (0.1, 9), (0.5, 1)])
def test_min_calibration_size(fpr, need):
    assert min_calibration_size(fpr) == need
    conformal_upper_threshold(np.zeros(need), fpr)
    with pytest.raises(BadInput, match=f"at least {need} held-out retain prompts"):
        conformal_upper_threshold(np.zeros(need - 1), fpr)


@pytest.mark.parametrize("fpr", [0.0, 1.0, -0.1, 1.5])
def test_fpr_outside_open_unit_interval(fpr):
    with pytest.raises(BadInput, match="fpr"):
        conformal_upper_threshold(np.zeros(100), fpr)


def test_upper_coverage_holds_in_simulation():
    """Average over 4,000 calibration draws: P(new retain score > t) <= fpr (finite-sample guarantee)."""
    rng = np.random.default_rng(1)
    n, fpr, trials = 40, 0.05, 4000
    calib = rng.normal(size=(trials, n))
    k = int(np.ceil((n + 1) * (1 - fpr)))
    t = np.sort(calib, axis=1)[:, k - 1]
    new = rng.normal(size=(trials, 200))
    rate = (new > t[:, None]).mean()
    assert rate <= fpr + 3 * np.sqrt(fpr * (1 - fpr) / (trials * 200))
    assert rate > 0.5 * fpr  # not vacuous: the rule is tight, not a huge threshold


def test_lower_threshold():
    s = np.arange(1.0, 101.0)
    assert conformal_lower_threshold(s, 0.02) == 2.0  # floor(101 * 0.02) = 2 -> 2nd smallest
    assert conformal_lower_threshold(s[:10], 0.05) is None  # floor(11 * 0.05) = 0: nothing may be cleared


def test_pac_threshold_controls_conditional_fpr():
    """Over 1,000 calibration draws, the conditional FPR of the PAC threshold exceeds fpr in <= delta of them;
    the marginal rule exceeds it far more often (it only controls the mean)."""
    from scipy.stats import norm

    rng = np.random.default_rng(2)
    n, fpr, delta = 200, 0.05, 0.1
    over_pac = over_marginal = 0
    for _ in range(1000):
        calib = rng.normal(size=n)
        over_pac += norm.sf(conformal_pac_threshold(calib, fpr, delta)) > fpr
        over_marginal += norm.sf(conformal_upper_threshold(calib, fpr)) > fpr
    assert over_pac / 1000 <= delta + 0.03  # 3 binomial standard deviations
    assert over_marginal / 1000 > 0.3


def test_pac_needs_enough_samples():
    assert pac_min_calibration_size(0.05, 0.1) == 45  # 0.95^45 = 0.0994 <= 0.1 < 0.95^44
    conformal_pac_threshold(np.zeros(45), 0.05, 0.1)
    with pytest.raises(BadInput, match="at least 45 held-out retain prompts"):
        conformal_pac_threshold(np.zeros(44), 0.05, 0.1)
