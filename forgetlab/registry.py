"""One small registry for everything a user chooses by name (corruptions, heads, methods, backends, stages).

Entries are either objects or lazy ``"package.module:attribute"`` strings that are imported on first use, so a
heavy backend (vLLM, Ray) never loads unless it is asked for, and nothing registers itself as a side effect of
being imported: every registry lists its entries in one literal where it is defined. An unknown name is a
:class:`~forgetlab.errors.BadInput` listing the known ones.

    >>> BACKENDS = Registry("backend", {"local": "forgetlab.grok.sweep.backends:local_backend"})
    >>> BACKENDS.names()
    ['local']
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from .errors import BadInput

T = TypeVar("T")


def resolve(target: str) -> Any:
    """Import ``"package.module:attribute"`` (dots after the colon walk attributes) and return the object."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"registry target {target!r} is not of the form 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Named entries of one kind; ``get(name)`` returns the object, importing a lazy entry once."""

    def __init__(self, kind: str, entries: Mapping[str, T | str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = dict(entries or {})
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def in_order(self) -> list[str]:
        """The registered names in the order they were registered (stages run in this order)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, name: str, field: str | None = None) -> str:
        """Return ``name`` if registered, else raise :class:`BadInput` naming ``field`` (default: the kind)."""
        if name not in self._entries:
            raise BadInput(field or self.kind, name, "one of " + ", ".join(self.names()))
        return name

    def get(self, name: str, field: str | None = None) -> T:
        """The entry called ``name`` (imported on first use when lazy)."""
        self.check(name, field)
        if name not in self._loaded:
            entry = self._entries[name]
            self._loaded[name] = resolve(entry) if isinstance(entry, str) else entry
        return self._loaded[name]

    __getitem__ = get

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` for every entry, importing lazy ones."""
        return [(name, self.get(name)) for name in self.names()]

    def name_of(self, obj: Any) -> str | None:
        """The name under which ``obj`` is registered (lazy entries are imported to compare), or None."""
        for name in self.names():
            try:
                if self.get(name) is obj:
                    return name
            except ImportError:
                continue
        return None

    def add(self, name: str, entry: T | str) -> None:
        """Register ``entry`` under ``name`` explicitly (plug-ins and test fakes; replaces an earlier entry)."""
        self._entries[name] = entry
        self._loaded.pop(name, None)

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests undo their :meth:`add`)."""
        self._entries.pop(name, None)
        self._loaded.pop(name, None)
