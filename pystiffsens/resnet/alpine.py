"""The Alpine02 regression task of the Hudson et al. deck.

``f(x) = prod_i sqrt(|x_i|) sin(x_i)`` on ``[-5, 5]^d``, an optimisation benchmark the deck
uses as a regression target (Jamil & Yang, *A literature survey of benchmark functions for
global optimization problems*, Int. J. Math. Model. Numer. Optim. 4 (2013), "Alpine N. 2",
there maximised on ``[0, 10]^d``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DOMAIN = (-5.0, 5.0)
"""The input box ``[-5, 5]`` per coordinate, as in the deck."""


def alpine02(x):
    """``prod_i sqrt(|x_i|) sin(x_i)`` over the last axis of ``x``."""
    x = jnp.asarray(x, dtype=jnp.float64)
    return jnp.prod(jnp.sqrt(jnp.abs(x)) * jnp.sin(x), axis=-1)


def make_data(key, dim: int = 2, n_train: int = 900, n_test: int = 100):
    """Inputs uniform on ``[-5, 5]^dim`` and Alpine02 targets.

    Returns ``(x_train, y_train, x_test, y_test)`` with inputs ``(n, dim)`` and targets ``(n, 1)``.
    """
    for name, value in (("dim", dim), ("n_train", n_train), ("n_test", n_test)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name}={value!r} must be a positive integer.")
    x = jax.random.uniform(key, (n_train + n_test, dim), dtype=jnp.float64, minval=DOMAIN[0], maxval=DOMAIN[1])
    y = alpine02(x)[:, None]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
