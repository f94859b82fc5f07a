import pytest

from forgetlab.errors import BadInput
from forgetlab.grok.phases import DIVERGED, PHASES, classify_phase, diverged_warning, is_collapsed


@pytest.mark.parametrize("train,test,xi,collapsed,phase", [
    (0.95, 0.95, 0.35, False, "Coexistence"),
    (0.90, 0.90, 0.35, False, "Coexistence"),          # both thresholds inclusive
    (0.899, 0.99, 0.35, False, "Partial Inversion"),
    (0.70, 1.00, 0.35, False, "Partial Inversion"),    # exactly 1.05 - xi is Partial
    (0.699, 1.00, 0.35, False, "Full Inversion"),
    (0.654, 1.00, 0.35, False, "Full Inversion"),
    (0.99, 0.5, 0.35, False, "Memorization"),
    (0.99, 0.5, 0.35, True, "Memorization"),
    (0.01, 0.01, 0.35, True, "Forgetting"),
    (0.30, 0.30, 0.35, False, "Confusion"),
    (0.89, 0.95, 0.15, False, "Full Inversion"),       # xi <= 0.15: no Partial band (1.05 - xi >= 0.9)
    (0.89, 0.95, 0.10, False, "Full Inversion"),
    (0.89, 0.95, 0.16, False, "Partial Inversion"),
])
def test_rules(train, test, xi, collapsed, phase):
    assert classify_phase(train, test, xi, collapsed) == phase


def test_collapse_and_bad_input():
    assert is_collapsed(1e-4) and not is_collapsed(5.0) and is_collapsed(5.0, 0.0)
    with pytest.raises(BadInput):
        classify_phase(1.5, 0.5, 0.2)
    with pytest.raises(BadInput):
        classify_phase(0.5, 0.5, 1.2)


def test_collapsing_counts_against_the_initial_norm():
    """Forgetting at finite steps: a run whose weights fell below half their initial norm is collapsing even
    before the absolute 1e-2 (p = 47, wd 20 passes 13.3 -> 1.3 -> 0.02); one that kept them is Confusion."""
    assert is_collapsed(1.3, None, 13.3) and is_collapsed(6.0, None, 13.3)
    assert not is_collapsed(9.1, None, 13.3) and not is_collapsed(1.3, None, None)
    assert classify_phase(0.3, 0.2, 0.5, is_collapsed(1.3, 0.5, 13.3)) == "Forgetting"
    assert classify_phase(0.3, 0.2, 0.5, is_collapsed(20.0, 0.5, 13.3)) == "Confusion"


def test_a_diverged_run_is_labelled_apart_from_the_phases():
    """Whatever its accuracies (read off NaN outputs), a diverged run is Diverged, a label outside the six."""
    assert DIVERGED not in PHASES
    assert classify_phase(0.95, 0.95, 0.2, diverged=True) == classify_phase(0.1, 0.1, 0.2, True, True) == DIVERGED
    assert diverged_warning([{"phase": "Confusion"}]) is None and diverged_warning([]) is None
    line = diverged_warning([{"phase": DIVERGED, "diverged_step": 300}, {"phase": DIVERGED, "diverged_step": "100"},
                             {"phase": "Coexistence"}])
    assert line.startswith("2 of 3 runs diverged") and "first seen at logged step 100" in line
