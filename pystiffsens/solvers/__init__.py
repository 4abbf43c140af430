"""The native JAX solvers, by name: :data:`CATALOG`.

Adaptive: ``Rodas4``, ``Rodas5P``, ``Rosenbrock23`` (Rosenbrock–Wanner), ``KenCarp4``,
``TRBDF2``, ``Kvaerno5`` (ESDIRK), ``RadauIIA5`` (fully implicit), ``FBDF`` (variable-order
BDF). Fixed-step references (need ``dt``): ``ImplicitEuler``, ``Trapezoid``, ``BDF2``; the
exponential integrators ``LawsonEuler`` and ``ETDRK4`` (:mod:`.exponential`).

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
from .exponential import ETDRK4, LAWSON_EULER, ExponentialRK, ExponentialTableau
from .firk import FIRK
from .rosenbrock import Rosenbrock
from .stability import BDFStability, OneStepStability, bdf
from .tableaux import (
    IMPLICIT_EULER,
    KENCARP4,
    KENCARP4_EXPLICIT,
    KVAERNO5,
    RADAU5,
    RODAS4,
    RODAS5P,
    ROSENBROCK23,
    TRAPEZOID,
    TRBDF2,
    ButcherTableau,
    RosenbrockTableau,
)
from .tableaux.radau import TOLERANCE_MAP as RADAU5_TOLERANCE_MAP

CATALOG: Catalog[AbstractSolver] = Catalog("solver", AbstractSolver)
register = CATALOG.register

register(Rosenbrock(RODAS4, julia="Rodas4", julia_gpu="GPURodas4"))
register(Rosenbrock(RODAS5P, julia="Rodas5P", julia_gpu="GPURodas5P"))
register(ESDIRK(KENCARP4, explicit=KENCARP4_EXPLICIT, julia="KenCarp4"))
register(BDF("FBDF", max_order=5, adaptive=True, julia="FBDF"))
register(Rosenbrock(ROSENBROCK23, julia="Rosenbrock23"))
register(ESDIRK(TRBDF2, julia="TRBDF2"))
register(ESDIRK(KVAERNO5, julia="Kvaerno5"))
register(FIRK(RADAU5, tolerance_map=RADAU5_TOLERANCE_MAP, julia="RadauIIA5"))
register(ESDIRK(IMPLICIT_EULER, julia="ImplicitEuler"))
register(ESDIRK(TRAPEZOID, julia="Trapezoid"))
# OrdinaryDiffEq's fixed-leading-coefficient BDF2 (Alberdi Celaya et al., Procedia Comput. Sci.
# 29, 2014) starts with one implicit-Euler step, as this one does.
register(BDF("BDF2", max_order=2, adaptive=False, julia="ABDF2"))
# On Julia, LawsonEuler(krylov = true) and ETDRK4(krylov = true): the Jacobian of each step is the
# linear part, as here (pystiffsens/julia/README.md says which sensitivities run them).
register(ExponentialRK(LAWSON_EULER, julia="LawsonEuler"))
register(ExponentialRK(ETDRK4, julia="ETDRK4"))


def get(solver) -> AbstractSolver:
    """The solver called ``solver`` (any case); a solver object passes through.

    A tableau gets its stepper: a :class:`ButcherTableau` :class:`ESDIRK` when diagonally
    implicit, else :class:`FIRK`; a :class:`RosenbrockTableau` :class:`Rosenbrock`; an
    :class:`ExponentialTableau` :class:`ExponentialRK`. The same
    tableau object gives the same solver object (the registered one for a built-in tableau),
    so its compiled programs are reused.
    """
    if isinstance(solver, (ButcherTableau, RosenbrockTableau, ExponentialTableau)):
        found = _BY_TABLEAU.get(solver)
        if found is None:
            found = _BY_TABLEAU[solver] = _stepper(solver)
        return found
    return CATALOG.get(solver)


#: Tableau -> the solver made for it. Tableaux compare by identity, and each solver holds its
#: tableau, so an entry lives as long as the session, as a registered solver does.
_BY_TABLEAU: dict = {}


def _stepper(tableau) -> AbstractSolver:
    registered = next((solver for solver in CATALOG if getattr(solver, "tableau", None) is tableau), None)
    if registered is not None:
        return registered
    if isinstance(tableau, RosenbrockTableau):
        return Rosenbrock(tableau)
    if isinstance(tableau, ExponentialTableau):
        return ExponentialRK(tableau)
    return ESDIRK(tableau) if tableau.diagonally_implicit else FIRK(tableau)


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
    "ExponentialRK",
    "ExponentialTableau",
    "FIRK",
    "OneStepStability",
    "Rosenbrock",
    "RosenbrockTableau",
    "bdf",
    "fixed_step_names",
    "get",
    "names",
    "register",
]
