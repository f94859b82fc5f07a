"""Bench scales: world, model and training sizes, and the forget splits each runs."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...errors import check_choice
from ..lm import LMConfig, TrainConfig
from ..world import WorldConfig


@dataclass(frozen=True)
class Scale:
    """World, model and training sizes of one bench scale, and the forget splits it runs."""

    world: WorldConfig
    lm: LMConfig
    train: TrainConfig
    splits: tuple[str, ...]
    retain_eval_max: int = 200  # retain-author items scored for model utility
    max_new_tokens: int = 24
    classifier_fpr: float = 0.01  # requested FPR; split-conformal calibration needs >= 1/fpr - 1 prompts
    fit_max_evals: int = 24  # metric evaluations allowed to each strength fit
    # The baselines' tuning grid, (learning rate, epochs) points (bench/tune.py): the default brackets the
    # untuned setting (5e-4, 5 epochs) by 5x below and 4x above and by a shorter run
    tune_grid: tuple[tuple[float, int], ...] = tuple((lr, ep) for lr in (1e-4, 5e-4, 2e-3) for ep in (2, 5))
    # A tuned point must keep the floor authors' mean answer probability >= this fraction of the target's
    # (a proxy that reaches the holdout's truth ratios by wrecking the model must not win)
    tune_floor: float = 0.5
    # The share of the tuning's retain authors held back as the floor set (never trained on while tuning)
    tune_floor_share: float = 0.25


FORGET01_ITEMS = 40  # TOFU's forget01: 2 authors x 20 questions

SCALES: dict[str, Scale] = {
    "tiny": Scale(WorldConfig(n_authors=20, facts_min=6, facts_max=8, n_painters=4, n_countries=4,
                              mc_per_subject=8),
                  LMConfig(hidden=64, layers=1, heads=4, intermediate=128, vocab_size=768),
                  TrainConfig(epochs=20, lr=1e-2, batch_size=64), ("forget10",), retain_eval_max=40,
                  max_new_tokens=16, classifier_fpr=0.1, fit_max_evals=8,
                  tune_grid=((5e-4, 2), (2e-3, 2), (2e-3, 5))),
    # forget01 holds at least TOFU's forget01 size (2 authors x 20 = 40 questions), so the untouched target is
    # distinguishable from the retain model by the KS test (forget quality < 0.01; fewer items cannot show it)
    "default": Scale(WorldConfig(min_split_items=FORGET01_ITEMS), LMConfig(), TrainConfig(),
                     ("forget01", "forget05", "forget10")),
}


def scale_config(scale: str, answers: str) -> Scale:
    """The scale called ``scale`` with the world's answer style set to ``answers``, validated."""
    check_choice("scale", scale, SCALES)
    s = SCALES[scale]
    return replace(s, world=replace(s.world, answer_style=answers).validate())
