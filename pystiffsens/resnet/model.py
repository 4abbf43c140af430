"""A ResNet read as the explicit-Euler discretisation of a neural ODE, and its layer stiffness.

With ``N = depth`` layers and horizon ``T``, the hidden state ``x_0 = W_in u + b_in`` of an
input ``u`` is updated by

    x_n = x_{n-1} + (T/N) tanh(W_n x_{n-1} + b_n),   n = 1, ..., N,

which is one explicit-Euler step of ``dx/dt = tanh(W(t) x + b(t))`` with ``W(t) = W_n`` on
``[(n-1)T/N, nT/N)``; the output is ``W_out x_N + b_out``. Layer ``n``'s rate of change
``F_n(x) = tanh(W_n x + b_n)`` has the Jacobian

    J_n(x) = diag(tanh'(W_n x + b_n)) W_n,

and the deck's stiffness of layer ``n`` at sample ``i`` is a proxy of ``J_n(x_{n-1}^(i))``.

Parameters are a dict: ``W_in (width, dim)``, ``b_in (width,)``, ``W (depth, width, width)``,
``b (depth, width)``, ``W_out (out, width)``, ``b_out (out,)`` — the hidden layers stacked so
that the forward pass is one ``lax.scan``.

Reference: J. Hudson, K. Sargsyan, M. D'Elia, H. Najm, *Examining stiffness in ResNets through
interpretation as discretized Neural ODEs*, Sandia LDRD 21-0528 slides, 2022.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._validation import choose
from ..stiffness import frobenius, singular_max, singular_ratio, spectral_radius, stiffness_ratio

LAYER_PROXIES = ("stiffness_ratio", "spectral_radius_gelfand", "singular_max", "singular_ratio", "frobenius")
"""Per-layer proxies reported by :func:`layer_proxies`: the deck's eigenvalue ratio
``|lambda_1|/|lambda_n|``, the Gelfand spectral radius (the penalised proxy), the largest
singular value and the Frobenius norm (the deck's upper bounds of ``|lambda_1|``), and the
singular value ratio ``sigma_max/sigma_min``."""


def init_params(key, dim: int, width: int, depth: int, out_dim: int = 1) -> dict:
    """Weights ``N(0, 1/fan_in)`` (LeCun normal) and zero biases, float64."""
    for name, value in (("dim", dim), ("width", width), ("depth", depth), ("out_dim", out_dim)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name}={value!r} must be a positive integer.")
    k_in, k_hidden, k_out = jax.random.split(key, 3)

    def normal(k, shape):
        return jax.random.normal(k, shape, dtype=jnp.float64) / jnp.sqrt(shape[-1])

    return {
        "W_in": normal(k_in, (width, dim)),
        "b_in": jnp.zeros(width, dtype=jnp.float64),
        "W": normal(k_hidden, (depth, width, width)),
        "b": jnp.zeros((depth, width), dtype=jnp.float64),
        "W_out": normal(k_out, (out_dim, width)),
        "b_out": jnp.zeros(out_dim, dtype=jnp.float64),
    }


def tanh_slope(z):
    """``tanh'(z) = sech(z)^2 = 4 e^(-2|z|) / (1 + e^(-2|z|))^2``. Unlike ``1 - tanh(z)^2``, which is
    exactly 0 in float64 once ``|z| > 19``, this stays positive until ``e^(-2|z|)`` underflows, so
    saturated units do not make the layer Jacobians exactly singular."""
    e = jnp.exp(-2.0 * jnp.abs(z))
    return 4.0 * e / (1.0 + e) ** 2


def depth_of(params) -> int:
    return params["W"].shape[0]


def hidden_states(params, u, horizon: float = 1.0):
    """States ``x_0, ..., x_N`` (array ``(N + 1, width)``) for one input ``u`` of shape ``(dim,)``."""
    dt = horizon / depth_of(params)
    x0 = params["W_in"] @ u + params["b_in"]

    def layer(x, wb):
        W, b = wb
        x_next = x + dt * jnp.tanh(W @ x + b)
        return x_next, x_next

    _, xs = jax.lax.scan(layer, x0, (params["W"], params["b"]))
    return jnp.concatenate([x0[None], xs])


def readout(params, x):
    return params["W_out"] @ x + params["b_out"]


def predict(params, u, horizon: float = 1.0):
    """Network output for inputs ``u`` of shape ``(dim,)`` or ``(n, dim)``."""
    one = lambda v: readout(params, hidden_states(params, v, horizon)[-1])  # noqa: E731
    return jnp.vectorize(one, signature="(d)->(o)")(u)


def layer_jacobians(params, u, horizon: float = 1.0):
    """``J_n(x_{n-1}) = diag(tanh'(W_n x_{n-1} + b_n)) W_n`` for one input: ``(N, width, width)``."""
    xs = hidden_states(params, u, horizon)[:-1]
    pre = jnp.einsum("nij,nj->ni", params["W"], xs) + params["b"]
    return tanh_slope(pre)[:, :, None] * params["W"]


def layer_proxies(params, u, horizon: float = 1.0, names=LAYER_PROXIES) -> dict:
    """Per-layer, per-sample stiffness ``s_{n,i}`` for inputs ``u`` ``(n_samples, dim)``.

    Returns ``{name: array (n_samples, N)}`` for each proxy in ``names`` (a subset of
    :data:`LAYER_PROXIES`). The deck's total stiffness of the network is
    ``layer_proxies(...)["stiffness_ratio"].sum()``.
    """
    functions = {
        "stiffness_ratio": stiffness_ratio,
        "spectral_radius_gelfand": spectral_radius,
        "singular_max": singular_max,
        "singular_ratio": singular_ratio,
        "frobenius": frobenius,
    }
    names = [choose("layer proxy", name, LAYER_PROXIES) for name in names]
    J = jax.vmap(layer_jacobians, in_axes=(None, 0, None))(params, jnp.atleast_2d(u), horizon)
    return {name: functions[name](J) for name in names}
