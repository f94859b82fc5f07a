"""Property-based fuzzing of every command (hypothesis): generated arguments and input files (tests/fuzz_cli.py).

For every generated invocation: the command ends with exit code 0, 1 or 2 and never a traceback; a failure is
exactly one `error:` line on stderr and leaves nothing created or changed; a success prints only its
machine-readable result on stdout. `make test` runs a fast, derandomized profile (FORGETLAB_FUZZ_CLI_EXAMPLES
per command, default 3); `benchmarks/fuzz.py` runs the long one and writes the counts to
docs/benchmarks/robustness.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fuzz_cli import FIXTURES, commands, counter, fuzz_command

from forgetlab.cli import command

EXAMPLES = int(os.environ.get("FORGETLAB_FUZZ_CLI_EXAMPLES", "3"))
COUNTS: dict[str, dict[str, int]] = {}
NOT_FUZZED = {"eco lm-eval": "every argument is lm-eval's own (tests/unlearning/test_harness.py)"}
NO_VALUE = {"--quiet"}  # options whose only effect is on the progress display


def _leaves(group, path=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _leaves(cmd, (*path, name))
        else:
            yield " ".join((*path, name)), cmd


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    from fuzz_cli import build_fixtures

    return build_fixtures(tmp_path_factory.mktemp("fuzz-fixtures"))


@pytest.fixture(autouse=True)
def _stand_ins(monkeypatch):
    from fuzz_cli import stand_ins

    stand_ins(monkeypatch.setattr)


def test_every_command_and_option_is_fuzzed(tmp_path):
    """A new command or option cannot slip past the fuzzer: each is in its pools (or named here as not)."""
    pools = commands({k: tmp_path / k for k in FIXTURES})
    leaves = dict(_leaves(command()))
    assert set(pools) == set(leaves) - set(NOT_FUZZED)
    for name, (_, options) in pools.items():
        declared = {o for p in leaves[name].params for o in (*p.opts, *p.secondary_opts)
                    if p.param_type_name == "option"}
        declared |= {p.name.upper() for p in leaves[name].params if p.param_type_name == "argument"}
        assert declared - NO_VALUE - {"--help"} <= set(options), (name, declared - set(options) - NO_VALUE)
        assert set(options) <= declared, (name, set(options) - declared)


@pytest.mark.parametrize("name", sorted(commands(dict.fromkeys(FIXTURES, Path("."))).keys()))
def test_generated_invocations_are_one_line_errors_or_clean_results(name, fx):
    examples = 2 if name == "eco fit" else EXAMPLES  # a valid fit trains a classifier: the slowest case
    fuzz_command(name, fx, examples, counter(COUNTS, [], strict=True),
                 derandomize=not os.environ.get("FORGETLAB_FUZZ_RANDOM"))
    assert COUNTS[name]["cases"] >= 1
