"""Kvaerno5: Kværnø's ESDIRK 5(4), seven stages, L-stable and stiffly accurate.

A. Kværnø, "Singly diagonally implicit Runge–Kutta methods with an explicit first stage",
BIT Numer. Math. 44 (2004) 489–502, the order-5 method with ``gamma = 0.26`` (coefficients as
published there to 17 digits, the same in OrdinaryDiffEq's and diffrax's Kvaerno5). Both
solutions are stages: the order-4 embedded solution is the sixth stage value (``c_6 = 1``) and
the order-5 solution the seventh (the last row of ``A`` is ``b``), so
``b_error = A[6] - A[5]``. The paper gives no dense output; as diffrax and OrdinaryDiffEq
do, this uses the cubic Hermite interpolant (:mod:`._hermite`).
"""

from __future__ import annotations

import numpy as np

from ._base import ButcherTableau
from ._hermite import hermite_dense

_G = 0.26
_A = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [_G, _G, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.13, 0.84033320996790809, _G, 0.0, 0.0, 0.0, 0.0],
    [0.22371961478320505, 0.47675532319799699, -0.06470895363112615, _G, 0.0, 0.0, 0.0],
    [0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998, _G, 0.0, 0.0],
    [0.13855640231268224, 0.0, -0.04245337201752043, 0.02446657898003141, 0.61943039072480676, _G, 0.0],
    [0.13659751177640291, 0.0, -0.05496908796538376, -0.04118626728321046, 0.62993304899016403,
     0.06962479448202728, _G],
])

KVAERNO5 = ButcherTableau(
    A=_A,
    b=_A[6],
    c=_A.sum(axis=1),
    b_error=_A[6] - _A[5],
    dense=hermite_dense(_A[6]),
    order=5,
    embedded_order=4,
    name="Kvaerno5",
    reference=(
        "A. Kvaerno, Singly diagonally implicit Runge-Kutta methods with an explicit first stage, "
        "BIT Numer. Math. 44 (2004) 489-502."
    ),
)
