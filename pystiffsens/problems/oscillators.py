"""The Van der Pol oscillator in the singular-perturbation scaling of the IVP test set."""

from __future__ import annotations

import jax.numpy as jnp

from ..problem import Problem
from ._registry import register


def _rhs(t, y, p):
    return jnp.stack([y[1], p["mu"] * ((1.0 - y[0] ** 2) * y[1] - y[0])])


@register("van_der_pol")
def van_der_pol(mu: float = 1e3, t_end: float = 2.0) -> Problem:
    """Van der Pol y1' = y2, y2' = mu((1 - y1^2) y2 - y1), y(0) = (2, 0); stiffness knob: ``mu``.

    With mu = 1e6 and t_end = 2 this is VDPOL of the IVP test set (epsilon = 1/mu).
    Default loss: y1(t_end) + y2(t_end). No closed-form solution.
    """
    return Problem(
        _rhs,
        y0=[2.0, 0.0],
        tspan=(0.0, t_end),
        params={"mu": mu},
        stiffness="mu",
        name="van_der_pol",
        description="Van der Pol relaxation oscillator",
    )
