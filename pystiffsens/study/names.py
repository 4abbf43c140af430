"""Solver and sensitivity names of a sweep, checked up front and made canonical.

Canonical names go into the frame and the resume key, so ``"forward"`` and
``"ForwardDiffSensitivity"`` name the same batch. Each backend has its own vocabulary: the
Julia backend adds SciMLSensitivity methods the JAX backend lacks (``QuadratureAdjoint``,
``ZygoteAdjoint``); its table is read without starting Julia.
"""

from __future__ import annotations

from .. import _validation


def resolve_solvers(solvers, backend: str) -> list[str]:
    """Canonical solver names for a name or a list of names."""
    valid, _ = _vocabulary(backend)
    return _distinct([_validation.choose("solver", name, valid) for name in _as_names(solvers, "solvers")], "solvers", solvers)


def resolve_sensitivities(sensitivities, backend: str) -> list[str]:
    """Canonical sensitivity-method names for a name or a list of names (aliases accepted)."""
    _, (valid, aliases) = _vocabulary(backend)
    names = [_validation.choose("sensitivity", name, valid, aliases) for name in _as_names(sensitivities, "sensitivities")]
    return _distinct(names, "sensitivities", sensitivities)


def _vocabulary(backend: str):
    """``(solver names, (sensitivity names, aliases))`` of ``backend``."""
    if backend == "julia":
        from ..julia_backend import names as julia

        return list(julia.SOLVERS), (list(julia.SENSITIVITIES), julia.SENSITIVITY_ALIASES)
    from .. import sensitivity, solvers

    return solvers.names(), (sensitivity.names(), sensitivity.ALIASES)


def _as_names(value, kind: str) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{kind}={value!r} must be a name or a non-empty list of names.")
    return names


def _distinct(names: list[str], kind: str, given) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError(f"{kind}={given!r} names the same method twice ({names}); give each once.")
    return names
