"""The neural ODE: the known linear chain with a trainable fast rate plus a tanh MLP.

    y' = A(k, lam) y + m * s * MLP(y),   A(k, lam) y = (-k y1, k y1 - lam y2, lam y2),

The slow rate ``k`` is known (the data's, 1); the fast rate ``lam`` is trained. The MLP is
``3 -> hidden -> 3`` with tanh and must learn the back-reaction of
:func:`pystiffsens.node.system.true_rhs`; the mask ``m = (1, 0, 1)`` (:data:`NETWORK_MASK`)
lets it act on the slow states only, so that the intermediate's balance
``y2' = k y1 - lam y2`` stays the known one and ``lam`` is identifiable from ``y2 ~ k y1 / lam``
(a network term in ``y2'`` could trade off against ``lam``). ``s`` (``out_scale``, one
factor per state) is 1 unless the output scaling of Kim et al. is used
(:mod:`pystiffsens.node.remedies`).

One trajectory is a :class:`~pystiffsens.Problem` in the shifted state ``z = y - y_init``
(``z(0) = 0``), so that the initial state and the target trajectory are parameters
(``y_init``, ``target``) and one compiled gradient function serves every trajectory under
``jax.vmap`` and every stiffness level and remedy; ``weight`` (per state) weights the
squared error of the loss ``mean_{t, i} weight_i (y_i(t) - target_i(t))^2``. Those four
entries are data, not trained: :data:`TRAINABLE` lists the trained ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..api import make_gradient_fn
from ..problem import Problem
from ..problems.neural import mlp, mlp_params
from .system import N_STATES, SLOW_RATE

RATES = ("lam",)
NETWORK = ("W1", "b1", "W2", "b2")
TRAINABLE = RATES + NETWORK
"""Model parameters that are trained; the others (:data:`DATA`) come from the data set."""

DATA = ("k", "y_init", "target", "weight", "out_scale")

NETWORK_MASK = (1.0, 0.0, 1.0)
"""Which states' equations the network's output enters (not the fast intermediate's)."""

FAST = "lam"
"""The fast-mode parameter; every other trainable parameter belongs to the group ``rest``."""


def node_rhs(t, z, p):
    """Right-hand side in the shifted state ``z = y - y_init``."""
    y = z + p["y_init"]
    slow = p["k"] * y[0]
    fast = p["lam"] * y[1]
    linear = jnp.stack([-slow, slow - fast, fast])
    return linear + jnp.asarray(NETWORK_MASK) * p["out_scale"] * mlp(p, y, 2)


def node_loss(ts, zs, p):
    """Weighted mean squared error against ``target`` at the save times."""
    residual = zs + p["y_init"] - p["target"]
    return jnp.mean(p["weight"] * residual**2)


def init_model(key, *, fast_rate: float, hidden: int, scale: float = 0.1) -> dict:
    """Trainable parameters: the fast rate and MLP weights from N(0, scale^2), biases 0."""
    network = mlp_params(key, [N_STATES, hidden, N_STATES], scale=scale)
    return {"lam": jnp.float64(fast_rate), **network}


def trajectory_problem(model: dict, ts, t_end: float) -> Problem:
    """The :class:`~pystiffsens.Problem` of one trajectory, with placeholder data entries.

    Only its structure matters (the gradient function is called with the real data); the
    loss depends on every saved state, so ``saveat = ts``.
    """
    ts = np.asarray(ts, dtype=np.float64)
    placeholders = {
        "k": np.float64(SLOW_RATE),
        "y_init": np.zeros(N_STATES),
        "target": np.zeros((ts.size, N_STATES)),
        "weight": np.ones(N_STATES),
        "out_scale": np.ones(N_STATES),
    }
    return Problem(
        node_rhs,
        y0=np.zeros(N_STATES),
        tspan=(0.0, float(t_end)),
        params={**{name: model[name] for name in TRAINABLE}, **placeholders},
        loss=node_loss,
        saveat=ts,
        name="node_chain",
        description="linear chain with trainable rates plus a tanh MLP",
    )


def group_norms(grad: dict) -> dict:
    """Euclidean norms of the gradient over the fast parameter and over the rest."""
    fast = [name for name in grad if name.endswith(FAST)]
    rest = [name for name in grad if name not in fast]

    def norm(names):
        return jnp.sqrt(sum(jnp.sum(jnp.asarray(grad[name]) ** 2) for name in names))

    return {"grad_norm_fast": norm(fast), "grad_norm_rest": norm(rest)}


def batched_gradient_fn(problem: Problem, solver: str, sensitivity: str, *, rtol, atol, dt, max_steps):
    """``params -> outputs`` of :func:`pystiffsens.make_gradient_fn`, vmapped over the data entries.

    The trainable entries are shared, ``y_init`` and ``target`` carry a leading trajectory
    axis, ``k``, ``weight`` and ``out_scale`` are shared. Jitted.
    """
    fn = make_gradient_fn(problem, solver, sensitivity, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps)
    axes: dict[str, int | None] = {name: 0 if name in ("y_init", "target") else None for name in problem.params}
    return jax.jit(jax.vmap(fn, in_axes=(axes,)))
