"""Stiff chemical kinetics from the IVP test set (Mazzia & Magherini) and Hairer–Wanner II."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..problem import Problem
from ._registry import register


def _robertson_rhs(t, y, p):
    k1, k2, k3 = p["k1"], p["k2"], p["k3"]
    r1 = k1 * y[0]
    r2 = k2 * y[1] ** 2
    r3 = k3 * y[1] * y[2]
    return jnp.stack([-r1 + r3, r1 - r2 - r3, r2])


def robertson_loss(ts, ys, p):
    """sum(y(T)) + 1e4*y2(T): the conserved sum alone has zero sensitivity."""
    return jnp.sum(ys[-1]) + 1e4 * ys[-1, 1]


@register("robertson")
def robertson(k1: float = 0.04, k2: float = 3e7, k3: float = 1e4, t_end: float = 1e5) -> Problem:
    """Robertson's autocatalytic reaction (ROBER); stiffness knob: ``k2`` (the fast rate, 3e7 in the standard problem).

    y1' = -k1 y1 + k3 y2 y3, y2' = k1 y1 - k2 y2^2 - k3 y2 y3, y3' = k2 y2^2, y(0) = (1, 0, 0).
    Default loss: y1 + y2 + y3 + 1e4*y2 at t_end (the sum alone is conserved, so its
    gradient is zero). No closed-form solution. Hairer & Wanner II, Sect. IV.1.
    """
    return Problem(
        _robertson_rhs,
        y0=[1.0, 0.0, 0.0],
        tspan=(0.0, t_end),
        params={"k1": k1, "k2": k2, "k3": k3},
        loss=robertson_loss,
        stiffness="k2",
        name="robertson",
        description="ROBER chemical kinetics",
    )


HIRES_RATES = np.array([1.71, 0.43, 8.32, 0.0007, 8.75, 10.03, 0.035, 1.12, 1.745, 280.0, 0.69, 1.81])


def _hires_rhs(t, y, p):
    c = p["k"]
    y1, y2, y3, y4, y5, y6, y7, y8 = (y[i] for i in range(8))
    r = c[9] * y6 * y8
    return jnp.stack(
        [
            -c[0] * y1 + c[1] * y2 + c[2] * y3 + c[3],
            c[0] * y1 - c[4] * y2,
            -c[5] * y3 + c[1] * y4 + c[6] * y5,
            c[2] * y2 + c[0] * y3 - c[7] * y4,
            -c[8] * y5 + c[1] * y6 + c[1] * y7,
            -r + c[10] * y4 + c[0] * y5 - c[1] * y6 + c[10] * y7,
            r - c[11] * y7,
            -r + c[11] * y7,
        ]
    )


def _hires_stiffness(params, s):
    return {**params, "k": params["k"].at[9].set(HIRES_RATES[9] * s)}


@register("hires")
def hires(t_end: float = 321.8122) -> Problem:
    """HIRES, plant photomorphogenesis (8 species); stiffness knob s sets the y6*y8 rate to 280*s.

    Parameters: the 12 rate constants as the array ``k`` (1.71, ..., 280, 0.69, 1.81).
    Default loss: sum of y(t_end). Schäfer (1975); Hairer & Wanner II, Sect. IV.10; IVP
    test set reference at t = 321.8122.
    """
    y0 = np.zeros(8)
    y0[0], y0[7] = 1.0, 0.0057
    return Problem(
        _hires_rhs,
        y0=y0,
        tspan=(0.0, t_end),
        params={"k": HIRES_RATES},
        stiffness=_hires_stiffness,
        name="hires",
        description="HIRES photomorphogenesis kinetics",
    )


POLLUTION_RATES = np.array(
    [
        0.35, 26.6, 1.23e4, 8.6e-4, 8.2e-4, 1.5e4, 1.3e-4, 2.4e4, 1.65e4, 9.0e3,
        2.2e-2, 1.2e4, 1.88, 1.63e4, 4.8e6, 3.5e-4, 1.75e-2, 1.0e8, 4.44e11, 1.24e3,
        2.1, 5.78, 4.74e-2, 1.78e3, 3.12,
    ]
)
_POLLUTION_FAST = POLLUTION_RATES > 1e3


def _pollution_rhs(t, y, p):
    k = p["k"]
    y = [y[i] for i in range(20)]
    r = [
        k[0] * y[0], k[1] * y[1] * y[3], k[2] * y[4] * y[1], k[3] * y[6], k[4] * y[6],
        k[5] * y[6] * y[5], k[6] * y[8], k[7] * y[8] * y[5], k[8] * y[10] * y[1],
        k[9] * y[10] * y[0], k[10] * y[12], k[11] * y[9] * y[1], k[12] * y[13],
        k[13] * y[0] * y[5], k[14] * y[2], k[15] * y[3], k[16] * y[3], k[17] * y[15],
        k[18] * y[15], k[19] * y[16] * y[5], k[20] * y[18], k[21] * y[18],
        k[22] * y[0] * y[3], k[23] * y[18] * y[0], k[24] * y[19],
    ]
    r = [None] + r  # 1-based, as in the test-set description
    return jnp.stack(
        [
            -r[1] - r[10] - r[14] - r[23] - r[24] + r[2] + r[3] + r[9] + r[11] + r[12] + r[22] + r[25],
            -r[2] - r[3] - r[9] - r[12] + r[1] + r[21],
            -r[15] + r[1] + r[17] + r[19] + r[22],
            -r[2] - r[16] - r[17] - r[23] + r[15],
            -r[3] + 2 * r[4] + r[6] + r[7] + r[13] + r[20],
            -r[6] - r[8] - r[14] - r[20] + r[3] + 2 * r[18],
            -r[4] - r[5] - r[6] + r[13],
            r[4] + r[5] + r[6] + r[7],
            -r[7] - r[8],
            -r[12] + r[7] + r[9],
            -r[9] - r[10] + r[8] + r[11],
            r[9],
            -r[11] + r[10],
            -r[13] + r[12],
            r[14],
            -r[18] - r[19] + r[16],
            -r[20],
            r[20],
            -r[21] - r[22] - r[24] + r[23] + r[25],
            -r[25] + r[24],
        ]
    )


def _pollution_stiffness(params, s):
    return {**params, "k": jnp.where(_POLLUTION_FAST, POLLUTION_RATES * s, params["k"])}


@register("pollution")
def pollution(t_end: float = 60.0) -> Problem:
    """POLLU, RIVM air-pollution chemistry (20 species, 25 reactions); stiffness knob s scales every rate constant above 1e3 by s.

    Parameters: the 25 rate constants as the array ``k``. Default loss: sum of y(t_end).
    Verwer, SIAM J. Sci. Comput. 15 (1994); IVP test set reference at t = 60.
    """
    y0 = np.zeros(20)
    y0[1], y0[3], y0[6], y0[7], y0[8], y0[16] = 0.2, 0.04, 0.1, 0.3, 0.01, 0.007
    return Problem(
        _pollution_rhs,
        y0=y0,
        tspan=(0.0, t_end),
        params={"k": POLLUTION_RATES},
        stiffness=_pollution_stiffness,
        name="pollution",
        description="POLLU air-pollution kinetics",
    )
