"""Command-line options derived from config dataclasses: each default and its help text live on the field.

A config field declared with :func:`setting` carries its help text; :func:`config_command` turns every field
of a dataclass into a typer option (``batch_size`` -> ``--batch-size``, booleans -> ``--flag/--no-flag``) and
hands the command one constructed config object, so a default is never restated in a CLI signature.

    @dataclass(frozen=True)
    class TrainConfig:
        p: int = setting(97, "Modulus.")

    @app.command("train")
    @config_command(TrainConfig)
    def train(config: TrainConfig, out: Path = typer.Option(...)) -> None: ...
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any

HELP = "help"


def setting(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with a default and the help text its command-line option shows."""
    return dataclasses.field(default=default, metadata={HELP: help, **metadata})


def field_help(cls: type, name: str) -> str:
    """The help text of field ``name`` of dataclass ``cls`` ("" when it has none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return str(f.metadata.get(HELP, ""))
    raise KeyError(name)


def _option(f: dataclasses.Field, tp: Any) -> Any:
    import typer

    flag = "--" + f.name.replace("_", "-")
    decls = [f"{flag}/--no-{flag[2:]}"] if tp is bool else [flag]
    kw: dict[str, Any] = {"help": f.metadata.get(HELP) or f.name.replace("_", " ")}
    if f.metadata.get("choices"):
        kw["help"] += " One of: " + ", ".join(map(str, f.metadata["choices"])) + "."
    return typer.Option(f.default, *decls, show_default=True, **kw)


def config_command(cls: type, *, exclude: Iterable[str] = (), param: str = "config") -> Callable:
    """Decorator: give a typer command one option per field of ``cls`` (except ``exclude``, which keep their
    defaults) and call it with ``param=cls(**fields)``; the command's own parameters come first."""
    skip = set(exclude)
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in skip]

    def deco(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for name, p in sig.parameters.items() if name != param]
        clash = {p.name for p in own} & {f.name for f in fields}
        if clash:
            raise TypeError(f"{fn.__name__}: parameters {sorted(clash)} clash with fields of {cls.__name__}")
        extra = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_option(f, hints[f.name]),
                                   annotation=hints[f.name]) for f in fields]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in fields}
            return fn(**{param: cls(**values)}, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *extra]}
        del wrapper.__wrapped__  # typer must read the new signature, not the wrapped function's
        return wrapper

    return deco
