"""Two textbook one-step methods used as baselines (fixed steps only: no embedded pair).

* Implicit Euler: order 1, L-stable, stiffly accurate; its sensitivity recursion is the
  simplest case of the vanishing-gradient analysis.
* Trapezoidal rule as a two-stage ESDIRK (Lobatto IIIA): order 2, A-stable but not
  L-stable (``R(-inf) = -1``), so stiff components oscillate instead of being damped.
  Dense output ``b_1(theta) = theta - theta**2/2``, ``b_2(theta) = theta**2/2`` (order 2) is
  the quadratic whose derivative interpolates the two stage slopes linearly.

Reference: E. Hairer, G. Wanner, Solving Ordinary Differential Equations II, 2nd ed.,
Springer, 1996, Sect. IV.3 (stability functions) and IV.6.
"""

from __future__ import annotations

import numpy as np

from ._base import ButcherTableau

_REFERENCE = (
    "E. Hairer, G. Wanner, Solving Ordinary Differential Equations II: Stiff and "
    "Differential-Algebraic Problems, 2nd ed., Springer, 1996, Sect. IV.3."
)

IMPLICIT_EULER = ButcherTableau(
    A=np.array([[1.0]]),
    b=np.array([1.0]),
    c=np.array([1.0]),
    b_error=np.array([0.0]),
    dense=np.array([[1.0]]),
    order=1,
    embedded_order=0,
    name="ImplicitEuler",
    reference=_REFERENCE,
)

TRAPEZOID = ButcherTableau(
    A=np.array([[0.0, 0.0], [0.5, 0.5]]),
    b=np.array([0.5, 0.5]),
    c=np.array([0.0, 1.0]),
    b_error=np.array([0.0, 0.0]),
    # b_1(theta) = theta - theta**2/2, b_2(theta) = theta**2/2.
    dense=np.array([[1.0, -0.5], [0.0, 0.5]]),
    order=2,
    embedded_order=0,
    name="Trapezoid",
    reference=_REFERENCE,
)
