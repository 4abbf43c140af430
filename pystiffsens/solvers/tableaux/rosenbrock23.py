"""Rosenbrock23: Shampine & Reichelt's ode23s, order 2 with an order-3 error estimate.

L. F. Shampine, M. W. Reichelt, "The MATLAB ODE suite", SIAM J. Sci. Comput. 18 (1997) 1–22,
Sect. 3.1. With ``d = 1/(2 + sqrt(2))``, ``e32 = 6 + sqrt(2)`` and ``W = I - h d J``:

    W k1 = F0 + h d T,                         F0 = f(t0, y0)
    W (k2 - k1) = F1 - k1,                     F1 = f(t0 + h/2, y0 + h k1/2)
    y1 = y0 + h k2
    W k3 = F2 - e32 (k2 - F1) - 2 (k1 - F0) + h d T,   F2 = f(t0 + h, y1)
    error = h (k1 - 2 k2 + k3)/6 = y1_hat - y1,

``T = f_t``. It is L-stable (``R(-inf) = 0``; :mod:`pystiffsens.solvers.stability` derives
``R`` from the coefficients below). SciML's default low-order stiff method, and the one Kim
et al. (Chaos 31, 2021) trained stiff neural ODEs with.

In the original Rosenbrock form ``K_i = h f(t0 + alpha_i h, y0 + sum_j alpha_ij K_j) +
gamma_i h^2 f_t + h J sum_j gamma_ij K_j`` (Hairer & Wanner II, Sect. IV.7, (7.4)) with
``K_i = h k_i``: eliminating ``F0`` and ``F1`` from the third stage with the first two stage
equations gives

    alpha = [[0, 0, 0], [1/2, 0, 0], [0, 1, 0]],
    Gamma = [[d, 0, 0], [-d, d, 0], [(e32 - 2) d, -e32 d, d]],
    b = (0, 1, 0),   b_hat = b + (1, -2, 1)/6 = (1/6, 2/3, 1/6)  (Simpson's weights),

and the transformed data of (7.25) follow from ``C = I/d - Gamma^-1``, ``a = alpha Gamma^-1``,
``m = b Gamma^-1``. The third stage only serves the error estimate. ode23s reuses its
``F2`` as the next step's ``F0`` (first same as last); this stepper evaluates it again.

Dense output: Shampine & Reichelt's interpolant
``y(t0 + theta h) = y0 + h (theta (1 - theta) k1 + theta (theta - 2 d) k2)/(1 - 2 d)``, which is
``(1 - theta) y0 + theta (y1 + (1 - theta) K_1)`` with ``K_1 = h (k1 - k2)/(1 - 2 d)``.
"""

from __future__ import annotations

import numpy as np

from ._base import RosenbrockTableau

_D = 1.0 / (2.0 + np.sqrt(2.0))
_E32 = 6.0 + np.sqrt(2.0)

# Gamma = d L with L unit lower triangular, so Gamma^-1 = L^-1/d with
# L^-1 = [[1, 0, 0], [1, 1, 0], [2, e32, 1]]; the transformed data in closed form:
_inv_d = 1.0 / _D

ROSENBROCK23 = RosenbrockTableau(
    gamma=_D,
    a=_inv_d * np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 1.0, 0.0]]),  # alpha Gamma^-1
    C=_inv_d * np.array([[0.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [-2.0, -_E32, 0.0]]),  # I/d - Gamma^-1
    m=_inv_d * np.array([1.0, 1.0, 0.0]),  # b Gamma^-1
    m_error=-_inv_d / 6.0 * np.array([1.0, _E32 - 2.0, 1.0]),  # (b - b_hat) Gamma^-1
    alpha=np.array([0.0, 0.5, 1.0]),
    gamma_sum=np.array([_D, 0.0, -_D]),
    H=np.array([[0.0, -_inv_d / (1.0 - 2.0 * _D), 0.0]]),  # (1, -1, 0) Gamma^-1 / (1 - 2 d)
    order=2,
    embedded_order=3,
    name="Rosenbrock23",
    reference=(
        "L. F. Shampine, M. W. Reichelt, The MATLAB ODE suite, SIAM J. Sci. Comput. 18 (1997) 1-22, "
        "Sect. 3.1 (ode23s)."
    ),
)
