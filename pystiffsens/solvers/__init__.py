"""The native JAX solvers, by name.

Adaptive: ``Rodas4``, ``Rodas5P`` (Rosenbrock–Wanner), ``KenCarp4`` (ESDIRK), ``FBDF``
(variable-order BDF). Fixed-step references (need ``dt``): ``ImplicitEuler``,
``Trapezoid``, ``BDF2``.
"""

from __future__ import annotations

from .._validation import choose
from .base import AbstractSolver
from .bdf import BDF
from .esdirk import ESDIRK
from .rosenbrock import Rosenbrock
from .tableaux import IMPLICIT_EULER, KENCARP4, RODAS4, RODAS5P, TRAPEZOID

_SOLVERS: dict[str, AbstractSolver] = {
    "Rodas4": Rosenbrock(RODAS4),
    "Rodas5P": Rosenbrock(RODAS5P),
    "KenCarp4": ESDIRK(KENCARP4),
    "FBDF": BDF("FBDF", max_order=5, adaptive=True),
    "ImplicitEuler": ESDIRK(IMPLICIT_EULER),
    "Trapezoid": ESDIRK(TRAPEZOID),
    "BDF2": BDF("BDF2", max_order=2, adaptive=False),
}


def names() -> list[str]:
    """Names of the native solvers."""
    return list(_SOLVERS)


def get(name: str | AbstractSolver) -> AbstractSolver:
    """The solver called ``name`` (an :class:`AbstractSolver` passes through)."""
    if isinstance(name, AbstractSolver):
        return name
    return _SOLVERS[choose("solver", name, names())]


def fixed_step_names() -> list[str]:
    return [name for name, solver in _SOLVERS.items() if not solver.adaptive]


__all__ = ["AbstractSolver", "BDF", "ESDIRK", "Rosenbrock", "get", "names", "fixed_step_names"]
