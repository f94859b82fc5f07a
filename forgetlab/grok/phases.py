"""Phase classification of a trained network (paper Appendix C): the single source of the thresholds.

Accuracies are fractions; ``train_acc`` is measured against the (corrupted) training labels.

- Coexistence:        test >= 0.9 and train >= 0.9
- Partial Inversion:  test >= 0.9 and (1.05 - xi) <= train < 0.9   (empty when xi <= 0.15)
- Full Inversion:     test >= 0.9 and train < (1.05 - xi)
- Memorization:       test < 0.9 and train >= 0.9
- Forgetting:         test < 0.9 and train < 0.9 and the weights collapsed (norm ~ 0 or a constant output)
- Confusion:          test < 0.9 and train < 0.9 otherwise
"""

from __future__ import annotations

from ..errors import check_range

PHASES = ("Coexistence", "Partial Inversion", "Full Inversion", "Memorization", "Forgetting", "Confusion")
ACC_THRESHOLD = 0.9
INVERSION_MARGIN = 1.05  # full inversion below (1.05 - xi): clean fraction plus a 5-point margin
COLLAPSE_NORM = 1e-2  # total L2 norm of (U, V, W) below which the network counts as collapsed
COLLAPSE_SPREAD = 1e-6  # max - min of all outputs below which the output counts as constant


def is_collapsed(weight_norm: float, output_spread: float | None = None) -> bool:
    """True when the weights decayed to (about) zero or the network outputs a constant."""
    if weight_norm < COLLAPSE_NORM:
        return True
    return output_spread is not None and output_spread < COLLAPSE_SPREAD


def classify_phase(train_acc: float, test_acc: float, xi: float, collapsed: bool = False) -> str:
    """Return one of :data:`PHASES` (see the module docstring for the rules)."""
    check_range("train_acc", train_acc, 0.0, 1.0, hi_open=False)
    check_range("test_acc", test_acc, 0.0, 1.0, hi_open=False)
    check_range("xi", xi, 0.0, 1.0)
    inversion_line = round(INVERSION_MARGIN - xi, 9)  # 1.05 - 0.35 must be 0.7, not 0.7000000000000001
    if test_acc >= ACC_THRESHOLD:
        if train_acc >= ACC_THRESHOLD:
            return "Coexistence"
        if train_acc >= inversion_line:
            return "Partial Inversion"
        return "Full Inversion"
    if train_acc >= ACC_THRESHOLD:
        return "Memorization"
    return "Forgetting" if collapsed else "Confusion"
