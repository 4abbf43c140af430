"""Rodas5P: Steinebach's stiffly accurate Rosenbrock method of order 5(4), 8 stages.

G. Steinebach, "Construction of Rosenbrock–Wanner method Rodas5P and numerical benchmarks
within the Julia Differential Equations package", BIT Numer. Math. 63 (2023), article 27.
Transformed form of Hairer & Wanner II, Sect. IV.7, (7.25), with the sign convention of
:class:`~pystiffsens.solvers.tableaux._base.RosenbrockTableau` (the same as the RODAS code
and as the ``Rodas5P`` tableau of OrdinaryDiffEq.jl, whose values these are; no conversion).

Like RODAS, the method is stiffly accurate twice over: row 7 of ``a`` is row 6 plus a one in
column 6, row 8 is row 7 plus a one in column 7, ``m`` is row 8 plus a one in column 8, and
the order-4 embedded solution is the stage-8 argument, so ``m_error = e_8``. In the original form ``beta[7] = b`` and
``beta[6] = b_hat`` with ``beta = alpha + Gamma``.

Dense output (order 4, Steinebach 2023): three rows of ``H`` over all eight stages, in the
Horner form of the tableau docstring,
``y(theta) = (1 - theta) y0 + theta (y1 + (1 - theta)(K_1 + theta (K_2 + theta K_3)))``.
"""

from __future__ import annotations

import numpy as np

from ._base import RosenbrockTableau

_a6 = [-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256, 0.030198172008377946]

RODAS5P = RosenbrockTableau(
    gamma=0.21193756319429014,
    a=np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [2.849394379747939, 0.45842242204463923, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [-6.954028509809101, 2.489845061869568, -10.358996098473584, 0.0, 0.0, 0.0, 0.0, 0.0],
        [2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641, 0.0, 0.0, 0.0, 0.0],
        [*_a6, 0.0, 0.0, 0.0],
        [*_a6, 1.0, 0.0, 0.0],
        [*_a6, 1.0, 1.0, 0.0],
    ]),
    C=np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [-14.155112264123755, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [-17.97296035885952, -2.859693295451294, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [147.12150275711716, -1.41221402718213, 71.68940251302358, 0.0, 0.0, 0.0, 0.0, 0.0],
        [165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306, 0.0, 0.0, 0.0, 0.0],
        [24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125, -0.6610691825249471,
         0.0, 0.0, 0.0],
        [30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783, -19.097331116725623,
         -28.087943162872662, 0.0, 0.0],
        [37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047, -40.06618937091002,
         -54.66780262877968, -9.48861652309627, 0.0],
    ]),
    m=np.array([*_a6, 1.0, 1.0, 1.0]),
    m_error=np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
    alpha=np.array([0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716, 0.4288403609558664,
                    1.0, 1.0, 1.0]),
    gamma_sum=np.array([0.21193756319429014, -0.42387512638858027, -0.3384627126235924, 1.8046452872882734,
                        2.325825639765069, 0.0, 0.0, 0.0]),
    H=np.array([
        [25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204, 0.524948541321073,
         1.1241088310450404, 0.4272876194431874, -0.17202221070155493],
        [-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796, 20.176138334709044,
         15.98066361424651, -6.789040303419874, -6.710236069923372],
        [11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643, -52.072871366152654,
         -59.78993625266729, -0.15582684282751913, 4.883087185713722],
    ]),
    order=5,
    embedded_order=4,
    name="Rodas5P",
    reference=(
        "G. Steinebach, Construction of Rosenbrock-Wanner method Rodas5P and numerical benchmarks "
        "within the Julia Differential Equations package, BIT Numer. Math. 63 (2023) 27."
    ),
)
