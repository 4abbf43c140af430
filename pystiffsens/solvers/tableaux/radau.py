"""RadauIIA5: the three-stage Radau IIA collocation method, order 5, with RADAU5's error estimate.

E. Hairer, G. Wanner, *Solving Ordinary Differential Equations II*, 2nd ed., Springer, 1996:
coefficients from Sect. IV.5, Table 5.6 (nodes ``c = ((4 - sqrt 6)/10, (4 + sqrt 6)/10, 1)``,
the zeros of the Radau polynomial); L-stable and stiffly accurate (last row of ``A`` equals
``b``), ``R(z)`` the (2, 3) Padé approximation of ``exp``. Dense output: the collocation
polynomial. The error estimate is the one of their code RADAU5 (Sect. IV.8, eqs. (8.19) and
(8.20)): the embedded third-order formula

    y1_hat = y0 + gamma0 h f(t0, y0) + sum_i b_hat_i h k_i,    gamma0 = 1 / mu,

``mu = 3 + 3^(2/3) - 3^(1/3)`` the real eigenvalue of ``A^-1``, gives
``y1_hat - y1 = gamma0 h f(t0, y0) + sum_i e_i z_i`` with ``z = A (h k)`` the stage increments and
``e = gamma0 (-13 - 7 sqrt 6, -13 + 7 sqrt 6, -1)/3``; the stepper filters it through
``(I - h gamma0 J)^-1``. Here ``b_error = b - b_hat = -A^T e`` and ``b_error_explicit = -gamma0``.
"""

from __future__ import annotations

import numpy as np

from ._base import ButcherTableau, collocation_dense

_S6 = np.sqrt(6.0)
_A = np.array([
    [(88 - 7 * _S6) / 360, (296 - 169 * _S6) / 1800, (-2 + 3 * _S6) / 225],
    [(296 + 169 * _S6) / 1800, (88 + 7 * _S6) / 360, (-2 - 3 * _S6) / 225],
    [(16 - _S6) / 36, (16 + _S6) / 36, 1 / 9],
])
_C = np.array([(4 - _S6) / 10, (4 + _S6) / 10, 1.0])
_GAMMA0 = 1.0 / (3.0 + 3.0 ** (2 / 3) - 3.0 ** (1 / 3))
_E = _GAMMA0 * np.array([-13 - 7 * _S6, -13 + 7 * _S6, -1.0]) / 3

#: RADAU5's tolerance transformation ``rtol' = 0.1 rtol**(2/3)``, ``atol' = atol rtol'/rtol`` (its source code,
#: Hairer & Wanner, https://www.unige.ch/~hairer/software.html; also OrdinaryDiffEq's RadauIIA5): the
#: order-3 estimate would otherwise hold the order-5 solution to a far smaller error than asked for.
TOLERANCE_MAP = (0.1, 2.0 / 3.0)

RADAU5 = ButcherTableau(
    A=_A,
    b=_A[-1],
    c=_C,
    b_error=-_A.T @ _E,
    b_error_explicit=-_GAMMA0,
    dense=collocation_dense(_C),
    order=5,
    embedded_order=3,
    name="RadauIIA5",
    reference=(
        "E. Hairer, G. Wanner, Solving Ordinary Differential Equations II: Stiff and Differential-Algebraic "
        "Problems, 2nd ed., Springer, 1996, Sect. IV.5 (Table 5.6) and IV.8 (RADAU5's error estimate)."
    ),
)
