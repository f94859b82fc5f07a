"""The ``forgetlab`` command line: thin wrappers that parse, validate, call the library and print.

Sub-commands live beside the science they drive (``forgetlab/grok/cli.py``, ``forgetlab/eco/cli.py``,
``forgetlab/unlearning/cli.py``, ``forgetlab/reproduce/cli.py``) and are mounted here, the only place that does.

Exit codes: 0 done; 1 a fault of the environment (no space left, disk quota, read-only file system, I/O error,
out of memory), or a result that missed its claims (``reproduce``); 2 bad input (any
:class:`~forgetlab.errors.ForgetlabError`, a usage error, a path that cannot be used: missing, not a folder,
permission denied). Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer >= 0.20 vendors click; older releases use the real package
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - typer < 0.20
    from click import exceptions as click_exc

from .errors import ENVIRONMENT_ERRNOS, ForgetlabError


class _PlainHelp:
    """Help as Unix tools write it: flags without a ``<bool>`` value placeholder (they take none), and
    positional arguments in the usage line as ``RUN_DIR`` (required) or ``[RUN_DIR]`` (optional)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []  # type: ignore[attr-defined]
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = (param.metavar or param.name).upper()
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class Command(_PlainHelp, TyperCommand):
    """Every ``forgetlab`` command (see :class:`_PlainHelp`)."""


class Group(_PlainHelp, TyperGroup):
    """Every ``forgetlab`` command group (see :class:`_PlainHelp`)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), self.subcommand_metavar]


app = typer.Typer(
    name="forgetlab",
    help="Make neural networks forget, and watch them forget.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=Group,
)


def _mount_subcommands() -> None:
    """Attach every command group: the only place commands are mounted. The unlearning judge's commands sit
    under ``forgetlab eco`` beside ECO's own, mounted here so that ECO never imports its judge."""
    from .eco.cli import app as eco_app
    from .grok.cli import app as grok_app
    from .reproduce.cli import reproduce_command
    from .unlearning.cli import app as unlearning_app

    if _MOUNTED:
        return
    for cmd in unlearning_app.registered_commands:
        eco_app.registered_commands.append(cmd)
    for sub in (grok_app, eco_app):
        for cmd in sub.registered_commands:
            if cmd.cls in (None, TyperCommand):
                cmd.cls = Command
    app.add_typer(grok_app, name="grok", help="Corrupted modular arithmetic: train, prune, phases, sweeps.",
                  cls=Group)
    app.add_typer(eco_app, name="eco", help="ECO: guard a causal LM with embedding-corrupted prompts.", cls=Group)
    app.command("reproduce", cls=Command)(reproduce_command)
    _MOUNTED.append(True)


def command() -> Any:
    """The click command of the whole ``forgetlab`` app (every sub-command mounted): what ``main`` runs and what
    the help tests walk."""
    _mount_subcommands()
    return typer.main.get_command(app)


_MOUNTED: list[bool] = []


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"forgetlab {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Make neural networks forget, and watch them forget."""


INTERRUPTED = 130  # exit code of a command stopped by Ctrl-C (128 + SIGINT), as typer and the shells give it
TERMINATED = 143  # exit code of a command stopped by SIGTERM (128 + 15): timeout(1), kill, schedulers
_sigterm_seen: list[bool] = []


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM runs Ctrl-C's clean-up: raised as KeyboardInterrupt where the command is, so claims are released
    and half-written folders removed (the default handler killed the process and left the folder's lock). Only
    the first raises: a second one during the clean-up is noted, not allowed to cut it short."""
    _sigterm_seen.append(True)
    if len(_sigterm_seen) == 1:
        raise KeyboardInterrupt


def _stopped(default_message: str, default_code: int) -> None:
    """Fail as a stopped command: 'terminated' (143) after SIGTERM, else the caller's message and code."""
    if _sigterm_seen:
        fail("terminated", TERMINATED)
    fail(default_message, default_code)


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit with ``code`` (2: bad input; 1: a fault of the environment)."""
    print(f"error: {message}".replace("\n", " "), file=sys.stderr)
    sys.exit(code)


def os_error_line(exc: OSError) -> str:
    """One line for an OS error: what failed, on which path (the path asked for, not a hidden temporary one)."""
    from .runs import final_path

    name = exc.filename
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    where = f": {final_path(name) if isinstance(name, str) else name}" if name not in (None, "") else ""
    what = exc.strerror or type(exc).__name__
    return f"{what}{where}"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run the app, turning bad input into one line and exit code 2."""
    _mount_subcommands()
    _sigterm_seen.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="forgetlab")
    except ForgetlabError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error_line(exc), 1 if exc.errno in ENVIRONMENT_ERRNOS else 2)
    except MemoryError:
        fail("out of memory", 1)
    except click_exc.NoArgsIsHelpError as exc:  # its message is the help; rich has printed it already ('')
        if exc.format_message().strip():
            print(exc.format_message())
        sys.exit(0)
    except click_exc.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx else ""
        fail(f"{where}{exc.format_message()}")
    except click_exc.ClickException as exc:
        fail(exc.format_message())
    except (typer.Abort, KeyboardInterrupt):
        _stopped("aborted", 2)
    except typer.Exit as exc:
        rv = exc.exit_code
    if rv == INTERRUPTED:  # typer's answer to Ctrl-C (returned, or raised): say so, keep the code for SIGINT
        _stopped("interrupted", INTERRUPTED)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
