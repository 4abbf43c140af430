"""The registry that maps built-in problem names to their factories."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .._validation import choose
from ..problem import Problem

_FACTORIES: dict[str, Callable[..., Problem]] = {}


def register(name: str):
    """Decorator adding a problem factory ``(**options) -> Problem`` under ``name``."""

    def decorate(factory):
        _FACTORIES[name] = factory
        return factory

    return decorate


def names() -> list[str]:
    """Names of the built-in problems."""
    return sorted(_FACTORIES)


def get(name: str, **options) -> Problem:
    """Build the built-in problem ``name``; ``options`` are the factory's keyword arguments."""
    name = choose("problem", name, names())
    factory = _FACTORIES[name]
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for problem {name!r}; valid options: {sorted(accepted)}."
        )
    return factory(**options)


def describe(name: str) -> str:
    """First paragraph of the factory's docstring (its summary and stiffness knob)."""
    doc = inspect.getdoc(_FACTORIES[choose("problem", name, names())]) or ""
    return doc.split("\n\n")[0].replace("\n", " ")
