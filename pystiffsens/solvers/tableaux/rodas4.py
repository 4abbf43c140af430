"""RODAS4: Hairer & Wanner's stiffly accurate Rosenbrock method of order 4(3), 6 stages.

Coefficients of the RODAS code (method choice ``METH = 1``) published with E. Hairer,
G. Wanner, *Solving Ordinary Differential Equations II*, 2nd ed., Springer 1996, Sect. IV.7
(``gamma = 1/4``, ``alpha_2 = 0.386``, ``alpha_3 = 0.21``, ``alpha_4 = 0.63``), in the
transformed form (7.25). The code solves
``(I/(h gamma) - J) U_i = f(...) + sum_j C_ij/h U_j + gamma_i h f_t``, the equation stated by
:class:`~pystiffsens.solvers.tableaux._base.RosenbrockTableau`, so its ``C`` (and ``D1..D4`` as
``gamma_sum``) are taken over without sign change or scaling.

Stiff accuracy: the sixth row of ``a`` is the fifth plus a one in column 5, and ``m`` is the
sixth row plus a one in column 6. So ``y1`` is the stage-6 argument plus ``U_6``, the embedded
order-3 solution is the stage-6 argument itself, and ``m_error = e_6``. In the original form
this reads ``beta[5] = b`` and ``beta[4] = b_hat``, with ``beta = alpha + Gamma``.

Dense output (order 3): the rows of ``H`` are the code's ``D21..D25`` and ``D31..D35``
(``U_6`` does not enter), evaluated there as
``y(theta) = y0 + theta (y1 - y0) + theta (1 - theta) (K_1 + theta K_2)``, which is the Horner
form of the tableau docstring rearranged.
"""

from __future__ import annotations

import numpy as np

from ._base import RosenbrockTableau

_a5 = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950]

RODAS4 = RosenbrockTableau(
    gamma=0.25,
    a=np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [1.544, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.9466785280815826, 0.2557011698983284, 0.0, 0.0, 0.0, 0.0],
        [3.314825187068521, 2.896124015972201, 0.9986419139977817, 0.0, 0.0, 0.0],
        [*_a5, 0.0, 0.0],
        [*_a5, 1.0, 0.0],
    ]),
    C=np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [-5.6688, 0.0, 0.0, 0.0, 0.0, 0.0],
        [-2.430093356833875, -0.2063599157091915, 0.0, 0.0, 0.0, 0.0],
        [-0.1073529058151375, -9.594562251023355, -20.47028614809616, 0.0, 0.0, 0.0],
        [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160, 0.0, 0.0],
        [8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054, 0.0],
    ]),
    m=np.array([*_a5, 1.0, 1.0]),
    m_error=np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
    alpha=np.array([0.0, 0.386, 0.21, 0.63, 1.0, 1.0]),
    gamma_sum=np.array([0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0]),
    H=np.array([
        [10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823, 1.025137723295662, 0.0],
        [-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386, -6.594389125716872, 0.0],
    ]),
    order=4,
    embedded_order=3,
    name="Rodas4",
    reference=(
        "E. Hairer, G. Wanner, Solving Ordinary Differential Equations II: Stiff and "
        "Differential-Algebraic Problems, 2nd ed., Springer, 1996, Sect. IV.7 (code RODAS)."
    ),
)
