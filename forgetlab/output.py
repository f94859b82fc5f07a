"""Where a command's words go: its result on stdout (strict JSON), status lines and warnings on stderr.

``forgetlab ... | jq`` must always work, so stdout carries nothing but the machine-readable result: one JSON
document (or one JSON object per line for per-prompt commands). Everything meant for a person (what is being
done, where files were written, warnings) is a line on stderr, silenced by ``--quiet`` except warnings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .runs import dumps_json


def emit(result: Any, *, indent: int | None = None) -> None:
    """Print ``result`` as strict JSON (no NaN: :func:`forgetlab.runs.dumps_json`) on stdout, one document."""
    sys.stdout.write(dumps_json(result, indent=indent) + "\n")
    sys.stdout.flush()


def status(enabled: bool = True) -> Callable[[str], None]:
    """A ``say(line)`` function writing status lines to stderr, or a no-op when disabled (``--quiet``)."""
    if not enabled:
        return lambda line: None

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    return say


def warn(line: str) -> None:
    """A warning on stderr (shown even with ``--quiet``: it says a result may not be what was asked)."""
    print(f"warning: {line}", file=sys.stderr, flush=True)
