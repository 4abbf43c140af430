"""Scalar test equations with closed-form solutions."""

from __future__ import annotations

import jax.numpy as jnp

from ..problem import Problem
from ._registry import register


def _dahlquist_rhs(t, y, p):
    return -p["lam"] * y


def _dahlquist_exact(t, p):
    return jnp.exp(-p["lam"] * t) * jnp.ones(1)


@register("dahlquist")
def dahlquist(lam: float = 10.0, t_end: float = 1.0) -> Problem:
    """Dahlquist's test equation y' = -lam*y, y(0) = 1; stiffness knob: ``lam``.

    Default loss: y(t_end). Exact solution exp(-lam t); exact sensitivity
    dy(T)/dlam = -T exp(-lam T).
    """
    return Problem(
        _dahlquist_rhs,
        y0=[1.0],
        tspan=(0.0, t_end),
        params={"lam": lam},
        stiffness="lam",
        name="dahlquist",
        exact_solution=_dahlquist_exact,
        description="y' = -lam*y",
    )


def _pr_rhs(t, y, p):
    g = jnp.sin(p["omega"] * t)
    dg = p["omega"] * jnp.cos(p["omega"] * t)
    return -p["lam"] * (y - g) + dg


def _pr_exact(t, p):
    return (jnp.sin(p["omega"] * t) + jnp.exp(-p["lam"] * t)) * jnp.ones(1)


@register("prothero_robinson")
def prothero_robinson(lam: float = 10.0, omega: float = 1.0, t_end: float = 1.0) -> Problem:
    """Prothero–Robinson y' = -lam (y - sin(omega t)) + omega cos(omega t), y(0) = 1; stiffness knob: ``lam``.

    Default loss: y(t_end). Exact solution sin(omega t) + exp(-lam t): the sensitivity to
    the fast rate ``lam`` decays with stiffness while the one to the slow frequency
    ``omega`` does not (Prothero & Robinson, Math. Comp. 28, 1974).
    """
    return Problem(
        _pr_rhs,
        y0=[1.0],
        tspan=(0.0, t_end),
        params={"lam": lam, "omega": omega},
        stiffness="lam",
        name="prothero_robinson",
        exact_solution=_pr_exact,
        description="y' = -lam (y - sin(omega t)) + omega cos(omega t)",
    )
