"""Which stability theory belongs to which method.

:func:`stability_function` accepts a solver name (``"ImplicitEuler"``, ``"Trapezoid"``,
``"Rodas4"``, ``"Rodas5P"``, ``"KenCarp4"``, ``"BDF1"`` … ``"BDF5"``), a
:class:`~pystiffsens.solvers.tableaux.ButcherTableau` or
:class:`~pystiffsens.solvers.tableaux.RosenbrockTableau`, or an object this package built
(:func:`~pystiffsens.theory.bdf` for a BDF order).

``FBDF`` changes its order between 1 and 5 as it runs, so no single stability function
describes it; asking for it raises ``ValueError`` that names the fixed-order choices
instead of silently picking one order.
"""

from __future__ import annotations

import functools

from .._validation import choose
from ..solvers import tableaux
from .multistep import BDFStability, bdf
from .one_step import OneStepStability

Theory = OneStepStability | BDFStability

_TABLEAUX = {
    "ImplicitEuler": tableaux.IMPLICIT_EULER,
    "Trapezoid": tableaux.TRAPEZOID,
    "Rodas4": tableaux.RODAS4,
    "Rodas5P": tableaux.RODAS5P,
    "KenCarp4": tableaux.KENCARP4,
}
_BDF_ORDERS = {f"BDF{k}": k for k in range(1, 6)}
_VARIABLE_ORDER = ("FBDF",)


def method_names() -> list[str]:
    """Names :func:`stability_function` resolves."""
    return list(_TABLEAUX) + list(_BDF_ORDERS)


@functools.cache
def _named(name: str) -> Theory:
    if name in _TABLEAUX:
        return OneStepStability.from_tableau(_TABLEAUX[name])
    return bdf(_BDF_ORDERS[name])


def stability_function(method) -> Theory:
    """The stability theory of ``method``: a name, a tableau or a theory object.

    Returns a :class:`~pystiffsens.theory.OneStepStability` (rational ``R(z)``) or a
    :class:`~pystiffsens.theory.BDFStability` (characteristic roots). Both offer ``R(z)``,
    ``dR(z)``, ``decay_exponent``, ``limit_at_infinity``, ``amplification(z)``,
    ``boundary_locus(theta)``, ``poles()``, ``n_step(z, n)`` and ``n_step_decay_exponent(n)``.
    """
    if isinstance(method, (OneStepStability, BDFStability)):
        return method
    if isinstance(method, (tableaux.ButcherTableau, tableaux.RosenbrockTableau)):
        return OneStepStability.from_tableau(method)
    if isinstance(method, str):
        name = choose("method", method, method_names() + list(_VARIABLE_ORDER))
        if name in _VARIABLE_ORDER:
            exponents = ", ".join(f"BDF{k}: {bdf(k).decay_exponent:.4g}" for k in range(1, 6))
            raise ValueError(
                f"method={method!r} is variable-order BDF (orders 1 to 5), so no single stability "
                f"function describes it; pass the order in use, one of {list(_BDF_ORDERS)} "
                f"(decay exponents {exponents})."
            )
        return _named(name)
    raise ValueError(
        f"method={method!r} must be a method name (one of {method_names()}), a ButcherTableau, "
        "a RosenbrockTableau, or pystiffsens.theory.bdf(order) for a BDF order."
    )
