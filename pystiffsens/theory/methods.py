"""Which stability theory belongs to which method.

:func:`stability_function` accepts a solver (a name from ``pss.solvers.names()`` or a solver
object, whose own ``stability()`` derives it from its coefficients), a fixed BDF order by
name (``"BDF1"`` … ``"BDF5"``), a :class:`~pystiffsens.solvers.ButcherTableau` or
:class:`~pystiffsens.solvers.RosenbrockTableau`, or a theory object
(:func:`~pystiffsens.theory.bdf` for a BDF order).

``FBDF`` changes its order between 1 and 5 as it runs, so no single stability function
describes it; asking for it raises ``ValueError`` that names the fixed-order choices
instead of silently picking one order.
"""

from __future__ import annotations

from .. import solvers
from .._validation import choose
from ..solvers.stability import BDFStability, ExponentialStability, OneStepStability, bdf

Theory = OneStepStability | BDFStability | ExponentialStability

#: Fixed BDF orders the theory knows by name besides the solvers (BDF2 is also a solver).
BDF_ORDERS = {f"BDF{k}": k for k in range(1, 6)}


def _has_theory(solver) -> bool:
    try:
        solver.stability()
    except ValueError:
        return False
    return True


def method_names() -> list[str]:
    """Names :func:`stability_function` resolves to one stability function."""
    named = [solver.name for solver in solvers.CATALOG if _has_theory(solver)]
    return named + [name for name in BDF_ORDERS if name not in named]


def stability_function(method) -> Theory:
    """The stability theory of ``method``: a solver (name or object), a BDF order's name, a tableau or a theory object.

    Returns a :class:`~pystiffsens.theory.OneStepStability` (rational ``R(z)``), a
    :class:`~pystiffsens.theory.BDFStability` (characteristic roots) or an
    :class:`~pystiffsens.theory.ExponentialStability` (``R(z) = e^z``). Each offers ``R(z)``,
    ``dR(z)``, ``decay_exponent``, ``limit_at_infinity``, ``amplification(z)``,
    ``boundary_locus(theta)``, ``poles()``, ``n_step(z, n)`` and ``n_step_decay_exponent(n)``.
    """
    if isinstance(method, (OneStepStability, BDFStability, ExponentialStability)):
        return method
    if isinstance(method, (solvers.ButcherTableau, solvers.RosenbrockTableau)):
        return OneStepStability.from_tableau(method)
    if isinstance(method, str) and method not in solvers.CATALOG:
        return bdf(BDF_ORDERS[choose("method", method, method_names() + _variable_order_names())])
    if isinstance(method, (str, solvers.AbstractSolver, solvers.ExponentialTableau)):
        return solvers.get(method).stability()
    raise ValueError(
        f"method={method!r} must be a method name (one of {method_names()}), a solver object, a ButcherTableau, "
        "a RosenbrockTableau, an ExponentialTableau, or pystiffsens.theory.bdf(order) for a BDF order."
    )


def _variable_order_names() -> list[str]:
    return [solver.name for solver in solvers.CATALOG if not _has_theory(solver)]
