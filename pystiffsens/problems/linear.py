"""A linear system with a slow and a fast mode."""

from __future__ import annotations

import jax.numpy as jnp

from ..problem import Problem
from ._registry import register


def _rhs(t, y, p):
    return jnp.stack([-p["a"] * y[0] + p["c"] * y[1], -p["lam"] * y[1]])


def _exact(t, p):
    a, c, lam = p["a"], p["c"], p["lam"]
    fast = jnp.exp(-lam * t)
    slow = jnp.exp(-a * t)
    return jnp.stack([slow + c * (slow - fast) / (lam - a), fast])


@register("linear_modes")
def linear_modes(a: float = 1.0, c: float = 1.0, lam: float = 100.0, t_end: float = 1.0) -> Problem:
    """Slow mode y1' = -a y1 + c y2 fed by a fast mode y2' = -lam y2, y(0) = (1, 1); stiffness knob: ``lam``.

    Default loss: y1(t_end) + y2(t_end). Exact solution y2 = exp(-lam t),
    y1 = exp(-a t) + c (exp(-a t) - exp(-lam t)) / (lam - a) (requires lam != a).
    """
    return Problem(
        _rhs,
        y0=[1.0, 1.0],
        tspan=(0.0, t_end),
        params={"a": a, "c": c, "lam": lam},
        stiffness="lam",
        name="linear_modes",
        exact_solution=_exact,
        description="slow mode a fed by fast mode lam through coupling c",
    )
