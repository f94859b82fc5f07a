"""Run ``forgetlab`` in-process as the shell would: (exit code, stdout, stderr)."""

from __future__ import annotations

import pytest

from forgetlab.cli import main


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``main(argv)`` always exits: return its exit code and what it printed to stdout and stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err
