"""Many forget requests in one guard: targets, each with its own flag rule and its own fitted corruption.

A provider receives forget requests one after another (one person this week, another next month). Each request
is a :class:`Target`: a name, a prompt classifier (optionally with a token classifier of its entities), and its
guard config (corruption, fitted strength, k, seed) with the record of its fit. Adding a target fits only that
target; the others are kept byte for byte. The guard's flag rule is the union of the targets' rules, and a
flagged prompt gets the corruption of every target that flagged it, each on that target's own positions (its
entity tokens, or the whole prompt): a prompt about two forgotten people has both names corrupted.

:class:`TargetRules` is the union rule usable without the base model (``forgetlab eco classify``). Target names
are folder names inside the guard folder (:data:`NAME`), so they are checked here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadInput
from .classify.rule import FlagRule

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_TARGET = "default"


def check_name(name: str, field: str = "name") -> str:
    """A target name: letters, digits, ``_ . -``, at most 64 characters, starting with a letter or digit."""
    if not isinstance(name, str) or not NAME.match(name):
        raise BadInput(field, name, "a target name of letters, digits, '_', '.', '-' (at most 64, starting with a "
                                    "letter or digit)")
    return name


@dataclass
class Target:
    """One forget request: its name, classifiers, guard config (a ``GuardConfig``) and fit record."""

    name: str
    classifier: Any
    config: Any
    token_classifier: Any = None
    fit: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        self.rule = FlagRule(self.classifier, self.token_classifier, bool(self.config.flag_entities))


def _rule(target: Any) -> Any:
    return getattr(target, "rule", target)


def target_flags(targets: Sequence[Any], prompts: Sequence[str]) -> np.ndarray:
    """``bool [T, B]``: which target's rule flags each prompt (targets, or their ``FlagRule`` s)."""
    prompts = list(prompts)
    if not prompts:
        return np.zeros((len(targets), 0), dtype=bool)
    return np.stack([np.asarray(_rule(t).flag(prompts), dtype=bool).reshape(len(prompts)) for t in targets])


def per_target(targets: Sequence[Target], flags: Any, texts: Sequence[str] | None) -> np.ndarray:
    """``bool [T, B]`` from ``flags``: a ``[T, B]`` matrix as given, or one flag per row ``[B]`` split among the
    targets whose rules flag the row's text (``texts``); a flagged row that no target claims (it was flagged on
    another text, e.g. a chat's messages) gets every target's corruption."""
    f = np.asarray(flags, dtype=bool)
    if f.ndim == 2:
        if f.shape[0] != len(targets):
            raise BadInput("flags", tuple(f.shape), f"one row of flags per target ({len(targets)})")
        return f
    f = f.reshape(-1)
    out = np.zeros((len(targets), len(f)), dtype=bool)
    rows = np.flatnonzero(f)
    if rows.size and texts is not None:
        out[:, rows] = target_flags(targets, [texts[i] for i in rows])
    unclaimed = rows[~out[:, rows].any(axis=0)] if rows.size else rows
    out[:, unclaimed] = True
    return out


class TargetRules:
    """The union of several targets' flag rules, usable without the base model (``FlagRule``'s interface);
    ``rules`` are ``(name, FlagRule)`` pairs."""

    def __init__(self, rules: Sequence[tuple[str, FlagRule]]) -> None:
        self.names = [n for n, _ in rules]
        self.targets = [r for _, r in rules]

    def flag(self, prompts: str | Sequence[str]) -> np.ndarray:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return target_flags(self.targets, prompts).any(axis=0)

    def parts(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(any classifier flag, highest classifier score, any name match) ``[B]`` over the targets."""
        parts = [r.parts(prompts) for r in self.targets]
        own = np.any([p[0] for p in parts], axis=0)
        scores = np.max([p[1] for p in parts], axis=0)
        names = np.any([p[2] for p in parts], axis=0)
        return own, scores, names

    def which(self, prompts: Sequence[str]) -> list[list[str]]:
        """The names of the targets that flag each prompt."""
        m = target_flags(self.targets, prompts)
        return [[n for n, hit in zip(self.names, m[:, b], strict=True) if hit] for b in range(m.shape[1])]
