"""Solver and sensitivity names of a sweep, checked up front and made canonical.

Canonical names go into the frame and the resume key, so ``"forward"`` and
``"ForwardDiffSensitivity"`` name the same batch.
"""

from __future__ import annotations

from .. import _validation


def resolve_solvers(solvers) -> list[str]:
    """Canonical solver names for a name or a list of names."""
    from .. import solvers as registry

    return _distinct(
        [_validation.choose("solver", name, registry.names()) for name in _as_names(solvers, "solvers")],
        "solvers",
        solvers,
    )


def resolve_sensitivities(sensitivities) -> list[str]:
    """Canonical sensitivity-method names for a name or a list of names (aliases accepted)."""
    from .. import sensitivity as registry

    return _distinct(
        [
            _validation.choose("sensitivity", name, registry.names(), registry.ALIASES)
            for name in _as_names(sensitivities, "sensitivities")
        ],
        "sensitivities",
        sensitivities,
    )


def _as_names(value, kind: str) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{kind}={value!r} must be a name or a non-empty list of names.")
    return names


def _distinct(names: list[str], kind: str, given) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError(f"{kind}={given!r} names the same method twice ({names}); give each once.")
    return names
