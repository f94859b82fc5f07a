"""The ``forgetlab`` command line: thin wrappers that parse, validate, call the library and print.

Sub-commands live beside the science they drive (``forgetlab/grok/cli.py``, ``forgetlab/eco/cli.py``) and are
mounted here. Any :class:`~forgetlab.errors.ForgetlabError` (and any usage error) becomes one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.20 vendors click; older releases use the real package
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc

from .errors import ForgetlabError

app = typer.Typer(
    name="forgetlab",
    help="Make neural networks forget, and watch them forget.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _mount_subcommands() -> None:
    """Attach the sub-apps; each module keeps heavy imports inside its commands so `--help` stays fast."""
    from .grok.cli import app as grok_app

    app.add_typer(grok_app, name="grok", help="Corrupted modular arithmetic: train, prune, phases, sweeps.")
    try:
        from .eco.cli import app as eco_app
    except ImportError:  # the ECO part is optional while it is being built
        eco_app = None
    if eco_app is not None:
        app.add_typer(eco_app, name="eco", help="ECO: guard a causal LM with embedding-corrupted prompts.")
    try:
        from .report import register as register_report
    except ImportError:
        register_report = None
    if register_report is not None:
        register_report(app)


def fail(message: str) -> None:
    """Print one line to stderr and exit with code 2 (bad input)."""
    print(f"error: {message}".replace("\n", " "), file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run the app, turning bad input into one line and exit code 2."""
    _mount_subcommands()
    try:
        rv = app(args=argv, standalone_mode=False)
    except ForgetlabError as exc:
        fail(str(exc))
    except click_exc.NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            print(exc.ctx.get_help())
        sys.exit(0)
    except click_exc.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx else ""
        fail(f"{where}{exc.format_message()}")
    except click_exc.ClickException as exc:
        fail(exc.format_message())
    except (typer.Abort, KeyboardInterrupt):
        fail("aborted")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
