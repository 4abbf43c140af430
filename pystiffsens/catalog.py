"""Catalogs of named method objects: the one place a solver or sensitivity name is resolved.

A :class:`Catalog` holds objects of one kind (``pss.solvers``: solver objects;
``pss.sensitivity``: sensitivity algorithms). Each object carries its own facts (its name,
aliases and whatever else its kind knows about it); the catalog only maps names to
objects. :meth:`Catalog.get` accepts a name or alias (case-insensitive) or an object of the
kind, which passes through, so an object is accepted wherever a name is. Entry points
resolve names once; below them only objects travel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from ._validation import choose

T = TypeVar("T")


class Catalog(Generic[T]):
    """Named objects of one kind.

    Parameters
    ----------
    kind : what the objects are, for messages (``"solver"``).
    base : their base class; instances of it pass :meth:`get` unchanged.
    """

    def __init__(self, kind: str, base: type):
        self.kind = kind
        self.base = base
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._lookup: dict[str, T] = {}  # lower-case name or alias -> entry

    def register(self, entry: T) -> T:
        """Add ``entry`` under its ``name`` and ``aliases``; ``ValueError`` if one is taken."""
        if not isinstance(entry, self.base):
            raise ValueError(f"{entry!r} is not a {self.base.__name__} and cannot be registered as a {self.kind}.")
        name = entry.name  # type: ignore[attr-defined]
        labels = (name, *getattr(entry, "aliases", ()))
        taken = {label.lower() for label in (*self._entries, *self._aliases)}
        clash = [label for label in labels if label.lower() in taken]
        if clash:
            raise ValueError(f"{self.kind} name(s) {clash} are already registered; choose another name.")
        self._entries[name] = entry
        for alias in labels[1:]:
            self._aliases[alias] = name
        self._lookup.update({label.lower(): entry for label in labels})
        return entry

    def unregister(self, name: str) -> T:
        """Remove the entry called ``name`` (and its aliases); return it."""
        entry = self.get(name)
        labels = {entry.name, *getattr(entry, "aliases", ())}  # type: ignore[attr-defined]
        del self._entries[entry.name]  # type: ignore[attr-defined]
        self._aliases = {alias: target for alias, target in self._aliases.items() if alias not in labels}
        self._lookup = {label: value for label, value in self._lookup.items() if value is not entry}
        return entry

    def get(self, value) -> T:
        """The object called ``value`` (a name or alias, any case); an object of the kind passes through."""
        if isinstance(value, self.base):
            return value  # type: ignore[return-value]
        found = self._lookup.get(value.lower()) if isinstance(value, str) else None
        if found is not None:
            return found
        return self._entries[choose(self.kind, value, list(self._entries), self._aliases)]  # raises, naming the choices

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def aliases(self) -> dict[str, str]:
        """Alias -> name."""
        return dict(self._aliases)

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def __contains__(self, value) -> bool:
        try:
            self.get(value)
        except ValueError:
            return False
        return True
