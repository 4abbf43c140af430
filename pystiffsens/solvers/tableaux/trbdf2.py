"""TR-BDF2 as a three-stage ESDIRK, order 2 with an embedded order-3 estimate.

R. E. Bank, W. M. Coughran, W. Fichtner, E. H. Grosse, D. J. Rose, R. K. Smith, "Transient
simulation of silicon devices and circuits", IEEE Trans. CAD 4 (1985) 436–451: a trapezoidal
step to ``t0 + gamma h`` followed by a BDF2 step to ``t0 + h``, with ``gamma = 2 - sqrt(2)``.
M. E. Hosea, L. F. Shampine, "Analysis and implementation of TR-BDF2", Appl. Numer. Math. 20
(1996) 21–37, write it as the ESDIRK with ``d = gamma/2`` on the diagonal and
``w = sqrt(2)/4``,

    A = [[0, 0, 0], [d, d, 0], [w, w, d]],   b = (w, w, d),   c = (0, gamma, 1),

L-stable and stiffly accurate, and give the embedded third-order weights
``b_hat = ((1 - w)/3, (3 w + 1)/3, d/3)`` whose difference estimates the local error (filtered
by ``(I - h d J)^-1`` in the stepper, as Hosea & Shampine do). Dense output: the cubic Hermite
interpolant (:mod:`._hermite`).
"""

from __future__ import annotations

import numpy as np

from ._base import ButcherTableau
from ._hermite import hermite_dense

_GAMMA = 2.0 - np.sqrt(2.0)
_D = _GAMMA / 2.0
_W = np.sqrt(2.0) / 4.0

_b = np.array([_W, _W, _D])
_b_hat = np.array([(1.0 - _W) / 3.0, (3.0 * _W + 1.0) / 3.0, _D / 3.0])

TRBDF2 = ButcherTableau(
    A=np.array([[0.0, 0.0, 0.0], [_D, _D, 0.0], [_W, _W, _D]]),
    b=_b,
    c=np.array([0.0, _GAMMA, 1.0]),
    b_error=_b - _b_hat,
    dense=hermite_dense(_b),
    order=2,
    embedded_order=3,
    name="TRBDF2",
    reference=(
        "R. E. Bank et al., IEEE Trans. CAD 4 (1985) 436-451; M. E. Hosea, L. F. Shampine, Analysis and "
        "implementation of TR-BDF2, Appl. Numer. Math. 20 (1996) 21-37."
    ),
)
