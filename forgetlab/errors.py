"""Exceptions for bad input: each names the field, the bad value and what is allowed.

The CLI turns any :class:`ForgetlabError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import errno
from typing import Any

ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ENOMEM, errno.EMFILE,
                                errno.ENFILE})
"""OS errors that are faults of the machine, not of the command's input: exit code 1."""


class ForgetlabError(ValueError):
    """Base class for errors a user can fix by changing their input."""


class BadInput(ForgetlabError):
    """A value outside what is allowed: ``BadInput("alpha", 1.5, "a number in [0, 1)")``."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: got {value!r}; allowed: {allowed}")


def check_range(field: str, value: float, lo: float, hi: float, *, lo_open: bool = False,
                hi_open: bool = True) -> float:
    """Return ``value`` if it is a number in the interval, else raise :class:`BadInput` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise BadInput(field, value, "a number")
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi):
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise BadInput(field, value, f"a number in {interval}")
    return value


def check_choice(field: str, value: str, known: list[str] | tuple[str, ...] | dict) -> str:
    """Return ``value`` if it is one of ``known``, else raise :class:`BadInput` listing them."""
    if value not in known:
        raise BadInput(field, value, "one of " + ", ".join(sorted(known)))
    return value
