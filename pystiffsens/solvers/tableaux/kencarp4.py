"""KenCarp4: Kennedy & Carpenter's additive Runge–Kutta pair ARK4(3)6L[2]SA, order 4(3), 6 stages.

C. A. Kennedy, M. H. Carpenter, "Additive Runge–Kutta schemes for convection–diffusion–
reaction equations", Appl. Numer. Math. 44 (2003) 139–181, Sect. 5 (ARK4(3)6L[2]SA, implicit
tableau) and its dense-output table (coefficients ``b*_ij`` with
``b_i(theta) = sum_j b*_ij theta**j``, ``j = 1..3``, shared by both halves of the pair).
Exact rational coefficients. The implicit method is L-stable and stiffly accurate
(last row of ``A`` equals ``b``) with an explicit first stage and ``A[i, i] = 1/4`` for
``i >= 1``. :data:`KENCARP4_EXPLICIT` is the explicit half (ARK4(3)6L[2]SA–ERK, same paper,
Sect. 5), with the same ``b``, ``b_hat``, ``c`` and dense output: the pair is what KenCarp4 runs
on a :class:`~pystiffsens.SplitRHS` (implicit–explicit); on a plain right-hand side it is the
implicit half alone.
"""

from __future__ import annotations

import numpy as np

from ._base import ButcherTableau

_GAMMA = 1 / 4

_b = np.array([82889 / 524892, 0.0, 15625 / 83664, 69875 / 102672, -2260 / 8211, _GAMMA])
_b_hat = np.array([
    4586570599 / 29645900160, 0.0, 178811875 / 945068544, 814220225 / 1159782912, -3700637 / 11593932,
    61727 / 225920,
])

_DENSE = np.array([  # row i holds (b*_i1, b*_i2, b*_i3)
    [6943876665148 / 7220017795957, -54480133 / 30881146, 6818779379841 / 7100303317025],
    [0.0, 0.0, 0.0],
    [7640104374378 / 9702883013639, -11436875 / 14766696, 2173542590792 / 12501825683035],
    [-20649996744609 / 7521556579894, 174696575 / 18121608, -31592104683404 / 5083833661969],
    [8854892464581 / 2390941311638, -12120380 / 966161, 61146701046299 / 7138195549469],
    [-11397109935349 / 6675773540249, 3843 / 706, -17219254887155 / 4939391667607],
])
_C = np.array([0.0, 1 / 2, 83 / 250, 31 / 50, 17 / 20, 1.0])
# What the two halves share: nodes, weights (solution, error estimate, dense output) and orders.
_SHARED = dict(c=_C, b=_b, b_error=_b - _b_hat, dense=_DENSE, order=4, embedded_order=3)
_REFERENCE = (
    "C. A. Kennedy, M. H. Carpenter, Additive Runge-Kutta schemes for convection-diffusion-reaction "
    "equations, Appl. Numer. Math. 44 (2003) 139-181 (ARK4(3)6L[2]SA, {half} part)."
)

KENCARP4 = ButcherTableau(
    A=np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [_GAMMA, _GAMMA, 0.0, 0.0, 0.0, 0.0],
        [8611 / 62500, -1743 / 31250, _GAMMA, 0.0, 0.0, 0.0],
        [5012029 / 34652500, -654441 / 2922500, 174375 / 388108, _GAMMA, 0.0, 0.0],
        [15267082809 / 155376265600, -71443401 / 120774400, 730878875 / 902184768, 2285395 / 8070912, _GAMMA, 0.0],
        _b,
    ]),
    name="KenCarp4",
    reference=_REFERENCE.format(half="implicit"),
    **_SHARED,
)

KENCARP4_EXPLICIT = ButcherTableau(
    A=np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [1 / 2, 0.0, 0.0, 0.0, 0.0, 0.0],
        [13861 / 62500, 6889 / 62500, 0.0, 0.0, 0.0, 0.0],
        [-116923316275 / 2393684061468, -2731218467317 / 15368042101831, 9408046702089 / 11113171139209,
         0.0, 0.0, 0.0],
        [-451086348788 / 2902428689909, -2682348792572 / 7519795681897, 12662868775082 / 11960479115383,
         3355817975965 / 11060851509271, 0.0, 0.0],
        [647845179188 / 3216320057751, 73281519250 / 8382639484533, 552539513391 / 3454668386233,
         3354512671639 / 8306763924573, 4040 / 17871, 0.0],
    ]),
    name="KenCarp4 (explicit half)",
    reference=_REFERENCE.format(half="explicit"),
    **_SHARED,
)
