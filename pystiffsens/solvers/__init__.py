"""The native JAX solvers, by name: :data:`CATALOG`.

Adaptive: ``Rodas4``, ``Rodas5P`` (Rosenbrock–Wanner), ``KenCarp4`` (ESDIRK), ``FBDF``
(variable-order BDF). Fixed-step references (need ``dt``): ``ImplicitEuler``,
``Trapezoid``, ``BDF2``.

A built-in solver is its coefficients (:mod:`.tableaux`) plus one registration below, which
also names its counterparts on the Julia backend. A method of your own is an object of the
same classes, usable wherever a name is (``pss.solve(problem, ESDIRK(my_tableau))``), or
registered under its name with :func:`register`.
"""

from __future__ import annotations

from ..catalog import Catalog
from .base import AbstractSolver
from .bdf import BDF
from .esdirk import ESDIRK
from .rosenbrock import Rosenbrock
from .stability import BDFStability, OneStepStability, bdf
from .tableaux import IMPLICIT_EULER, KENCARP4, RODAS4, RODAS5P, TRAPEZOID, ButcherTableau, RosenbrockTableau

CATALOG: Catalog[AbstractSolver] = Catalog("solver", AbstractSolver)
register = CATALOG.register

register(Rosenbrock(RODAS4, julia="Rodas4", julia_gpu="GPURodas4"))
register(Rosenbrock(RODAS5P, julia="Rodas5P", julia_gpu="GPURodas5P"))
register(ESDIRK(KENCARP4, julia="KenCarp4"))
register(BDF("FBDF", max_order=5, adaptive=True, julia="FBDF"))
register(ESDIRK(IMPLICIT_EULER, julia="ImplicitEuler"))
register(ESDIRK(TRAPEZOID, julia="Trapezoid"))
# OrdinaryDiffEq's fixed-leading-coefficient BDF2 (Alberdi Celaya et al., Procedia Comput. Sci.
# 29, 2014) starts with one implicit-Euler step, as this one does.
register(BDF("BDF2", max_order=2, adaptive=False, julia="ABDF2"))


def get(solver) -> AbstractSolver:
    """The solver called ``solver`` (any case); a solver object passes through."""
    return CATALOG.get(solver)


def names() -> list[str]:
    """Names of the registered solvers."""
    return CATALOG.names()


def fixed_step_names() -> list[str]:
    """Names of the registered solvers without an error estimate (they need ``dt``)."""
    return [solver.name for solver in CATALOG if not solver.adaptive]


__all__ = [
    "AbstractSolver",
    "BDF",
    "BDFStability",
    "ButcherTableau",
    "CATALOG",
    "ESDIRK",
    "OneStepStability",
    "Rosenbrock",
    "RosenbrockTableau",
    "bdf",
    "fixed_step_names",
    "get",
    "names",
    "register",
]
