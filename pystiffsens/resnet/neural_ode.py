"""A trained ResNet as a neural ODE, and per-layer gradient norms against stiffness.

The hidden layers of a ResNet (:mod:`pystiffsens.resnet.model`) are explicit-Euler steps of
size ``T/N`` of the neural ODE

    dx/dt = s * tanh(W(t) x + b(t)),   t in [0, T],   W(t) = W_n, b(t) = b_n on [(n-1)T/N, nT/N),

with ``s = 1``. :func:`neural_ode_problem` builds it as a :class:`~pystiffsens.Problem` for a
batch of inputs (the state stacks their hidden states ``x_0 = W_in u + b_in``), with one
parameter ``layer_n`` = ``[W_n | b_n]`` (shape ``(width, width + 1)``) per layer and the loss
``mean_i |W_out x_i(T) + b_out - y_i|^2``; ``W_in``, ``b_in``, ``W_out``, ``b_out`` are fixed.

Stiffness knob: ``s`` (parameter ``time_scale``), a multiplier of the vector field, i.e. the
same dynamics run over the horizon ``s T``. Every layer Jacobian becomes
``s * diag(tanh'(.)) W_n``, so the eigenvalues, and with them the stiffness ``rho(J) * T`` that
limits explicit steps, grow exactly linearly in ``s`` along the same trajectory shape; scaling
the weights instead would also move the tanh into saturation and change the trajectory.
The ResNet at stiffness ``s`` is explicit Euler with ``N`` steps on this problem:
``x_n = x_{n-1} + (sT/N) tanh(W_n x_{n-1} + b_n)``, i.e. the network with horizon ``s T``.

:func:`layer_gradient_frame` compares, layer by layer, ``||d loss / d [W_n | b_n]||_F`` of the
ResNet itself (``jax.grad`` through the network, solver ``"ResNet"``) with that of the neural
ODE solved by implicit solvers through :func:`pystiffsens.gradient`, over a grid of ``s``, as a
frame :func:`pystiffsens.study.fit_decay` takes.

The piecewise-constant ``W(t)`` makes the right-hand side discontinuous in ``t`` at the layer
boundaries. The adaptive solvers are not told where: they detect each jump through their error
estimate and shrink the step across it (visible as rejected steps in ``n_rejected``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..api import gradient
from ..problem import Problem
from ..returncode import ReturnCode
from . import model as resnet

KNOB = "time_scale"

SOLVERS = ("Rodas5P", "KenCarp4")

RESNET_SOLVER = "ResNet"
"""``solver`` label of the rows computed by ``jax.grad`` through the ResNet itself."""

RESNET_SENSITIVITY = "jax.grad"

FRAME_COLUMNS = (
    "problem", "backend", "device", "rtol", "atol", "dt", "solver", "sensitivity", "stiffness",
    "param", "grad", "abs_grad", "exact_grad", "loss", "status", "n_steps", "n_rejected",
)
"""Columns of :func:`layer_gradient_frame` (those :func:`pystiffsens.study.fit_decay` needs and
the step counters; ``grad`` is the Frobenius norm of the layer's gradient, ``exact_grad`` NaN)."""


def layer_names(depth: int) -> list[str]:
    return [f"layer_{n}" for n in range(1, depth + 1)]


def layer_params(params) -> dict:
    """``{"layer_n": [W_n | b_n]}`` from ResNet parameters."""
    W, b = jnp.asarray(params["W"]), jnp.asarray(params["b"])
    return {name: jnp.concatenate([W[i], b[i][:, None]], axis=1) for i, name in enumerate(layer_names(W.shape[0]))}


def _stacked(layers: dict):
    Wb = jnp.stack([layers[name] for name in layer_names(len(layers))])
    return Wb[:, :, :-1], Wb[:, :, -1]


def _squared_error(params, x_final, y):
    pred = x_final @ jnp.asarray(params["W_out"]).T + jnp.asarray(params["b_out"])
    return jnp.mean(jnp.sum((pred - y) ** 2, axis=-1))


def neural_ode_problem(params, u, y, *, horizon: float = 1.0, name: str = "resnet_node") -> Problem:
    """The neural ODE of the ResNet ``params`` on inputs ``u`` ``(batch, dim)`` with targets
    ``y`` ``(batch, out)`` (module docstring); stiffness knob ``time_scale``, 1 by default."""
    u = jnp.atleast_2d(jnp.asarray(u, dtype=jnp.float64))
    y = jnp.asarray(y, dtype=jnp.float64).reshape(u.shape[0], -1)
    if not horizon > 0:
        raise ValueError(f"horizon={horizon!r} must be positive.")
    depth = np.shape(params["W"])[0]
    width = np.shape(params["W"])[1]
    x0 = u @ jnp.asarray(params["W_in"]).T + jnp.asarray(params["b_in"])

    def rhs(t, x, p):
        W, b = _stacked({k: v for k, v in p.items() if k != KNOB})
        n = jnp.clip(jnp.floor(t * depth / horizon).astype(jnp.int32), 0, depth - 1)
        X = x.reshape(-1, width)
        return (p[KNOB] * jnp.tanh(X @ W[n].T + b[n])).reshape(-1)

    def loss(ts, ys, p):
        return _squared_error(params, ys[-1].reshape(-1, width), y)

    return Problem(
        rhs,
        y0=np.asarray(x0).reshape(-1),
        tspan=(0.0, horizon),
        params={**layer_params(params), KNOB: 1.0},
        loss=loss,
        stiffness=KNOB,
        name=name,
        description="ResNet hidden layers as a neural ODE with piecewise-constant weights",
    )


@jax.jit
def resnet_loss_and_grad(params, u, y, time_scale: float, horizon: float = 1.0):
    """Loss of the ResNet with horizon ``time_scale * horizon`` and its gradient with respect to
    each ``layer_n`` (``jax.grad`` through the network)."""
    u = jnp.atleast_2d(jnp.asarray(u, dtype=jnp.float64))
    y = jnp.asarray(y, dtype=jnp.float64).reshape(u.shape[0], -1)

    def loss(layers):
        W, b = _stacked(layers)
        net = {**params, "W": W, "b": b}
        x_final = jax.vmap(lambda v: resnet.hidden_states(net, v, time_scale * horizon)[-1])(u)
        return _squared_error(params, x_final, y)

    return jax.value_and_grad(loss)(layer_params(params))


def _rows(label, stiffness, value, grads, status, base, counters):
    rows = []
    for name in layer_names(len(grads)):
        norm = float(np.linalg.norm(np.asarray(grads[name])))  # Frobenius norm of [dW_n | db_n]
        rows.append({
            "problem": label, **base, "stiffness": float(stiffness), "param": name, "grad": norm,
            "abs_grad": norm, "exact_grad": np.nan, "loss": float(value), "status": status, **counters,
        })
    return rows


def layer_gradient_frame(
    models: dict,
    u,
    y,
    *,
    stiffness=(1.0, 2.0, 4.0, 8.0, 16.0),
    solvers=SOLVERS,
    sensitivity: str = "ReverseDiffAdjoint",
    horizon: float = 1.0,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 100_000,
    device: str = "cpu",
) -> pd.DataFrame:
    """Per-layer gradient norms of trained ResNets and of their neural ODEs over ``stiffness``.

    Parameters
    ----------
    models : ``{label: params}`` (e.g. ``{r.model: r.params for r in results}`` with and without
        the penalty); ``problem`` is ``"resnet_node_<label>"``.
    u, y : the inputs ``(batch, dim)`` and targets ``(batch, out)`` the loss is taken on; the
        ODE state has ``batch * width`` entries, so keep the batch small.
    stiffness : values of the knob ``time_scale`` (module docstring).
    solvers : implicit solvers for the neural ODE (default Rodas5P and KenCarp4).
    sensitivity : the :func:`pystiffsens.gradient` method. Default ``ReverseDiffAdjoint``, the
        discrete adjoint: like ``jax.grad`` through the ResNet it differentiates the discrete map
        (discretise-then-optimise), and its cost does not grow with the
        ``depth * width * (width + 1)`` parameters, unlike the forward-mode methods.
    horizon, rtol, atol, max_steps, device : as for :func:`pystiffsens.gradient`; ``horizon``
        is the ResNet's ``T``.

    Returns
    -------
    Long frame with :data:`FRAME_COLUMNS`: one row per model, solver (``"ResNet"`` for the
    network itself: explicit Euler with ``dt = T/N``, ``rtol``/``atol`` NaN), stiffness
    value and layer.
    """
    if not models:
        raise ValueError("models is empty; pass {label: params}, e.g. {r.model: r.params for r in results}.")
    grid = np.asarray(stiffness, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
        raise ValueError(f"stiffness={stiffness!r} must be a non-empty list of positive time scales.")
    rows = []
    for label, params in models.items():
        problem = neural_ode_problem(params, u, y, horizon=horizon, name=f"resnet_node_{label}")
        depth = np.shape(params["W"])[0]
        for s in grid:
            value, grads = resnet_loss_and_grad(params, u, y, s, horizon)
            finite = bool(np.isfinite(value)) and all(np.all(np.isfinite(g)) for g in grads.values())
            status = ReturnCode.Success.name if finite else ReturnCode.Unstable.name
            base = {"backend": "jax", "device": device, "rtol": np.nan, "atol": np.nan, "dt": horizon / depth,
                    "solver": RESNET_SOLVER, "sensitivity": RESNET_SENSITIVITY}
            rows += _rows(problem.label, s, value, grads, status, base, {"n_steps": depth, "n_rejected": 0})
            for solver in solvers:
                result = gradient(problem.with_stiffness(s), solver, sensitivity, rtol=rtol, atol=atol,
                                  max_steps=max_steps, device=device)
                grads = {name: result.grad[name] for name in layer_names(depth)}
                base = {"backend": result.backend, "device": device, "rtol": rtol, "atol": atol, "dt": np.nan,
                        "solver": result.solver, "sensitivity": result.sensitivity}
                counters = {"n_steps": result.stats["n_steps"], "n_rejected": result.stats["n_rejected"]}
                rows += _rows(problem.label, s, result.loss, grads, result.status.name, base, counters)
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
