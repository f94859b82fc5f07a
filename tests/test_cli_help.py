"""Every command's help: help text on every option, allowed values listed for every choice, the default named,
no `<bool>` placeholder on flags, usage lines as Unix tools write them, and `--version`."""

from __future__ import annotations

import re

import pytest
from cli_runner import run_cli

from forgetlab.cli import command


def _choices() -> dict[tuple[str, str], tuple[str, ...]]:
    """(command path, option) -> the allowed values, read from the registries that decide them."""
    from forgetlab.eco.corruptions import CORRUPTIONS
    from forgetlab.eco.fit import FIT_METHODS, MC_METRICS
    from forgetlab.eco.serve.backends import BACKENDS as SERVE_BACKENDS
    from forgetlab.eco.serve.cli import LOG_LEVELS
    from forgetlab.grok.cases import CASES
    from forgetlab.grok.config import ACTIVATIONS, LOSSES, MODELS, OPS
    from forgetlab.grok.sweep.backends import BACKENDS as SWEEP_BACKENDS
    from forgetlab.grok.sweep.spec import preset_names
    from forgetlab.reproduce.stage import SCALES as REPRODUCE_SCALES
    from forgetlab.unlearning.baselines import METHODS
    from forgetlab.unlearning.bench.scale import SCALES as BENCH_SCALES
    from forgetlab.unlearning.world import ANSWER_STYLES

    return {
        ("grok train", "--op"): tuple(OPS.names()), ("grok train", "--act"): tuple(ACTIVATIONS.names()),
        ("grok train", "--loss"): LOSSES, ("grok train", "--model"): MODELS,
        ("grok reproduce", "--cases"): CASES, ("grok sweep", "--preset"): tuple(preset_names()),
        ("grok sweep", "--backend"): tuple(SWEEP_BACKENDS.names()),
        ("eco fit", "--corruption"): tuple(CORRUPTIONS.names()), ("eco fit", "--metric"): tuple(MC_METRICS.names()),
        ("eco fit", "--method"): FIT_METHODS, ("eco serve", "--backend"): tuple(SERVE_BACKENDS.names()),
        ("eco serve", "--log-level"): LOG_LEVELS, ("eco world", "--answers"): ANSWER_STYLES,
        ("eco bench", "--answers"): ANSWER_STYLES, ("eco bench", "--scale"): tuple(BENCH_SCALES),
        ("eco bench", "--methods"): ("eco", *METHODS.names()), ("reproduce", "--scale"): REPRODUCE_SCALES,
        ("reproduce", "--only"): ("grok", "eco"),
    }


def _commands(group, path=()):
    """(path, click command) of every leaf command."""
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


COMMANDS = sorted(_commands(command()), key=lambda pc: pc[0])


def test_every_command_is_walked():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert names == {"reproduce", "grok train", "grok prune", "grok analytic", "grok reproduce", "grok sweep",
                     "grok phase-diagram", "eco fit", "eco classify", "eco generate", "eco serve", "eco world",
                     "eco evaluate", "eco bench", "eco bench-report", "eco bench-merge", "eco targets", "eco lm-eval"}


PASSTHROUGH = {"eco lm-eval"}  # every argument, --help included, is lm-evaluation-harness's own


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_has_help_and_names_its_default_and_choices(path, cmd):
    choices = _choices()
    assert cmd.help and cmd.help.strip(), f"{path}: no command help"
    for param in cmd.params:
        if getattr(param, "hidden", False):
            continue
        name = param.opts[0]
        where = f"{' '.join(path)} {name}"
        text = (param.help or "").strip()
        assert text, f"{where}: no help text"
        if param.param_type_name == "option" and not param.required and not param.is_flag:
            shown = param.show_default is not False and param.default is not None
            assert shown or "default" in text.lower(), f"{where}: the default is neither shown nor described"
        allowed = choices.get((" ".join(path), name))
        if allowed is not None:
            for value in allowed:
                assert re.search(rf"(?<![\w-]){re.escape(str(value))}(?![\w-])", text), f"{where}: {value!r} missing"
            if "default" in allowed:  # a choice called "default" must be the default
                assert param.default == "default", f"{where}: the choice 'default' is not the default"


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_rendered_help_has_no_placeholders_for_flags_and_a_readable_usage(path, cmd, capsys):
    if " ".join(path) in PASSTHROUGH:  # its own help: the parent's listing names it and what it passes on
        code, out, _ = run_cli([*path[:-1], "--help"], capsys)
        assert code == 0 and path[-1] in out and "lm-evaluation-harness" in out
        return
    code, out, err = run_cli([*path, "--help"], capsys)
    assert code == 0 and err == ""
    assert "<bool>" not in out and "{" not in out.split("Usage:")[1].splitlines()[0]
    usage = out.split("Usage:")[1].splitlines()[0].split()
    assert usage[:len(path) + 2] == ["forgetlab", *path, "[OPTIONS]"]
    for param in cmd.params:
        if param.param_type_name == "argument":
            assert (param.metavar or param.name).upper() in usage


def test_version(capsys):
    from forgetlab import __version__

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out == f"forgetlab {__version__}\n"


@pytest.mark.parametrize("argv", [[], ["grok"], ["eco"]])
def test_a_group_without_a_command_prints_its_help_once(argv, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 0 and err == ""
    assert out.count("Usage:") == 1 and "Commands" in out
