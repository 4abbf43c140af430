"""Accuracy against the published reference solutions of the IVP test set.

References: F. Mazzia & C. Magherini, "Test Set for Initial Value Problem Solvers",
release 2.4 (2008), problems ROBER (t = 1e11), HIRES (t = 321.8122), POLLU (t = 60) and
VDPOL (epsilon = 1e-6, t = 2); also Hairer & Wanner II, Sect. IV.10. Each value was
cross-checked here with scipy's Radau at rtol = 1e-12 (agreement to 2e-9 or better).
"""

import numpy as np
import pytest
from conftest import ADAPTIVE

import pystiffsens as pss

REFERENCES = {
    "robertson": (
        dict(t_end=1e11),
        [0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050],
    ),
    "hires": (
        {},
        [0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4, 0.1175651343283149e-2,
         0.2386356198831331e-2, 0.6238968252742796e-2, 0.2849998395185769e-2, 0.2850001604814231e-2],
    ),
    "pollution": (
        {},
        [0.5646255480022769e-1, 0.1342484130422339e+0, 0.4139734331099427e-8, 0.5523140207484359e-2,
         0.2018977262302196e-6, 0.1464541863493966e-6, 0.7784249118997964e-1, 0.3245075353396018e+0,
         0.7494013383880406e-2, 0.1622293157301561e-7, 0.1135863833257075e-7, 0.2230505975721359e-2,
         0.2087162882798630e-3, 0.1396921016840158e-4, 0.8964884856898295e-2, 0.4352846369330103e-17,
         0.6899219696263405e-2, 0.1007803037365946e-3, 0.1772146513969984e-5, 0.5682943292316392e-4],
    ),
    "van_der_pol": (dict(mu=1e6), [0.1706167732170483e1, -0.8928097010247975e0]),
}


@pytest.mark.parametrize("solver", ADAPTIVE)
@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_solution(name, solver):
    options, reference = REFERENCES[name]
    sol = pss.solve(pss.problems.get(name, **options), solver, rtol=1e-10, atol=1e-14)
    assert sol.status == pss.ReturnCode.Success
    np.testing.assert_allclose(sol.ys[-1], reference, rtol=2e-5, atol=1e-17)
