"""Train a stiff neural ODE written as an equinox module with optax, through ``pss.solve``.

The vector field is a stiff linear part with trainable log-rates plus a small MLP. Its
parameters are the module itself (any pytree works); ``pss.solve`` is differentiated by
``jax.grad`` with the sensitivity chosen here (the continuous adjoint), and the whole
training step is one ``jax.jit``. The data come from rates 1 and 200: the slow rate is
learned, while the fast one moves little, because its gradient vanishes with the
stiffness (the library's subject; try ``log_rate`` as here and the plain rate). Needs
equinox (``pip install equinox``).

Run: ``python examples/neural_ode_equinox.py [epochs]`` (about a minute on 2 cores).
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import pystiffsens as pss


class Field(eqx.Module):
    """``y' = -exp(log_rate) * y + mlp(y)``."""

    mlp: eqx.nn.MLP
    log_rate: jax.Array

    def __call__(self, y):
        return -jnp.exp(self.log_rate) * y + self.mlp(y)


def main(epochs: int = 100) -> None:
    ts = jnp.linspace(0.0, 2.0, 21)  # saved times from t0
    truth = pss.Problem(lambda t, y, p: -p["rates"] * y + 0.3 * jnp.tanh(y[::-1]), y0=[1.0, 1.0], tspan=(0.0, 2.0),
                        params={"rates": jnp.array([1.0, 200.0])}, saveat=ts)
    data = pss.solve(truth, "Rodas5P", rtol=1e-10, atol=1e-12).ys

    model = Field(eqx.nn.MLP(2, 2, 16, 1, activation=jnp.tanh, key=jax.random.PRNGKey(0)), jnp.log(jnp.array([2.0, 50.0])))
    problem = pss.Problem(lambda t, y, field: field(y), y0=[1.0, 1.0], tspan=(0.0, 2.0), params=model, saveat=ts)

    def loss(field):
        sol = pss.solve(problem, "KenCarp4", params=field, sensitivity="InterpolatingAdjoint", rtol=1e-6, atol=1e-8,
                        max_steps=2000)
        return jnp.mean((sol.ys - data) ** 2)

    def report(epoch, field, value):
        if epoch % max(1, epochs // 10) == 0 or epoch == epochs - 1:
            rates = jnp.exp(field.log_rate)
            print(f"epoch {epoch:4d}  loss {value:.3e}  rates {float(rates[0]):.3g}, {float(rates[1]):.3g}")

    fit(loss, model, epochs=epochs, learning_rate=3e-2, report=report)


def fit(loss, model, *, epochs: int, learning_rate: float, report=None):
    """Minimise ``loss(model)`` over the float arrays of the equinox module ``model`` with Adam.

    One ``jax.jit``-compiled step per epoch; ``report(epoch, model, loss)`` after each.
    Returns the trained module and the loss of every epoch.
    """
    optimizer = optax.adam(learning_rate)
    parameters, static = eqx.partition(model, eqx.is_inexact_array)
    state = optimizer.init(parameters)

    @jax.jit
    def step(parameters, state):
        value, grad = jax.value_and_grad(lambda q: loss(eqx.combine(q, static)))(parameters)
        updates, state = optimizer.update(grad, state)
        return optax.apply_updates(parameters, updates), state, value

    losses = []
    for epoch in range(epochs):
        parameters, state, value = step(parameters, state)
        losses.append(float(value))
        if report is not None:
            report(epoch, eqx.combine(parameters, static), losses[-1])
    return eqx.combine(parameters, static), losses

if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
