"""Cubic Hermite dense output for stiffly accurate methods with an explicit first stage.

When the first stage is explicit (``k_1 = f(t0, y0)``) and the method is stiffly accurate
(the last stage is ``y1``, so ``k_s = f(t0 + h, y1)``), the cubic Hermite interpolant through
``y0, y1`` with slopes ``f(t0, y0), f(t0 + h, y1)`` (Hairer, Nørsett & Wanner I, Sect. II.6)
is a combination of the stages, ``y(theta) = y0 + sum_i b_i(theta) h k_i`` with

    b_i(theta) = theta d_i1 + theta**2 (3 b_i - 2 d_i1 - d_is) + theta**3 (d_i1 + d_is - 2 b_i),

``d`` the Kronecker delta. It is third-order accurate and needs no further coefficients,
which is why diffrax and OrdinaryDiffEq use it for methods published without a dense output
(Kvaerno5, TR-BDF2).
"""

from __future__ import annotations

import numpy as np


def hermite_dense(b) -> np.ndarray:
    """The ``dense`` table ``(s, 3)`` of :class:`ButcherTableau` for the cubic Hermite interpolant."""
    b = np.asarray(b, dtype=np.float64)
    first = np.zeros_like(b)
    first[0] = 1.0
    last = np.zeros_like(b)
    last[-1] = 1.0
    return np.stack([first, 3 * b - 2 * first - last, first + last - 2 * b], axis=1)
