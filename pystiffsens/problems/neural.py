"""A stiff neural ODE: a linear part with a tunable fast rate plus a small tanh MLP."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..problem import Problem, SplitRHS
from ._registry import register


def mlp_params(key, sizes, scale: float = 0.1) -> dict:
    """Weights ``W{i}`` (out x in) and biases ``b{i}`` of a tanh MLP, small at initialisation."""
    params = {}
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:]), start=1):
        params[f"W{i}"] = scale * jax.random.normal(k, (n_out, n_in), dtype=jnp.float64)
        params[f"b{i}"] = jnp.zeros(n_out, dtype=jnp.float64)
    return params


def mlp(params, x, n_layers: int):
    for i in range(1, n_layers + 1):
        x = params[f"W{i}"] @ x + params[f"b{i}"]
        if i < n_layers:
            x = jnp.tanh(x)
    return x


def _linear(t, y, p):
    return -jnp.stack([p["lam_slow"], p["lam_fast"]]) * y


def _network(t, y, p):
    return mlp(p, y, 2)


def _rhs(t, y, p):
    return _linear(t, y, p) + _network(t, y, p)


@register("stiff_neural_ode")
def stiff_neural_ode(lam_fast: float = 100.0, lam_slow: float = 1.0, hidden: int = 8, seed: int = 0, t_end: float = 1.0,
                     split: bool = False) -> Problem:
    """Neural ODE y' = -diag(lam_slow, lam_fast) y + MLP(y), y(0) = (1, 1); stiffness knob: ``lam_fast``.

    The MLP is 2 -> ``hidden`` -> 2 with tanh, weights W1, b1, W2, b2 drawn from N(0, 0.1^2)
    with ``seed``. Default loss: y1(t_end) + y2(t_end). No closed-form solution. With
    ``split=True`` the right-hand side is a :class:`~pystiffsens.SplitRHS`: the known linear
    part stiff, the network non-stiff, so KenCarp4 takes the network explicitly (IMEX).
    """
    params = {"lam_slow": lam_slow, "lam_fast": lam_fast, **mlp_params(jax.random.PRNGKey(seed), [2, hidden, 2])}
    return Problem(
        SplitRHS(_linear, _network) if split else _rhs,
        y0=[1.0, 1.0],
        tspan=(0.0, t_end),
        params=params,
        stiffness="lam_fast",
        name="stiff_neural_ode",
        description="linear fast/slow rates plus a tanh MLP",
    )
