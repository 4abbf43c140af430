"""The registry that maps built-in problem names to their factories."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .._validation import choose
from ..problem import Problem

_FACTORIES: dict[str, Callable[..., Problem]] = {}


def register(name: str):
    """Decorator adding a problem factory ``(**options) -> Problem`` under ``name``.

    The factory's keyword arguments (with defaults) are the problem's options, and the first
    paragraph of its docstring, which :func:`describe` shows, names the stiffness knob.
    """

    def decorate(factory):
        _FACTORIES[name] = factory
        return factory

    return decorate


def names() -> list[str]:
    """Names of the built-in problems."""
    return sorted(_FACTORIES)


def options(name: str) -> dict[str, object]:
    """The options of the built-in problem ``name`` and their defaults (keyword arguments of
    :func:`get`), e.g. ``{"lam": 10.0, "t_end": 1.0}`` for ``"dahlquist"``."""
    factory = _FACTORIES[choose("problem", name, names())]
    return {option: parameter.default for option, parameter in inspect.signature(factory).parameters.items()}


def get(name: str, **options_) -> Problem:
    """Build the built-in problem ``name``; ``options_`` are the factory's keyword arguments.

    ``ValueError`` for an unknown name (listing the built-ins) or an unknown option (listing
    the problem's options with their defaults and its stiffness knob).
    """
    name = choose("problem", name, names())
    valid = options(name)
    unknown = sorted(set(options_) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for problem {name!r}; valid options (defaults): {format_options(valid)}. "
            f"{_summary(name)}"
        )
    return _FACTORIES[name](**options_)


def format_options(values: dict[str, object]) -> str:
    """``lam=10.0, t_end=1.0``."""
    return ", ".join(f"{option}={value!r}" for option, value in values.items()) or "none"


def describe(name: str) -> str:
    """One line on the built-in problem ``name``: the first paragraph of its factory's docstring
    (its equations and stiffness knob), then its options with their defaults."""
    return f"{_summary(name)} Options (defaults): {format_options(options(name))}."


def _summary(name: str) -> str:
    """The first paragraph of the factory's docstring, on one line."""
    doc = inspect.getdoc(_FACTORIES[choose("problem", name, names())]) or ""
    return doc.split("\n\n")[0].replace("\n", " ")
