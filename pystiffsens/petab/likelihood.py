"""PEtab v1 noise models: the negative log-likelihood of one measurement.

The densities are those of the PEtab v1 specification, section "Noise distributions"
(``doc/v1/documentation_data_format.rst``): with simulation ``y``, measurement ``m`` and noise
parameter ``sigma`` (standard deviation of ``normal``, scale of ``laplace``), the
``observableTransformation`` ``log``/``log10`` applies the distribution to ``log(m)``/``log10(m)``
and keeps the Jacobian of the transformation, ``m`` (and ``log(10)``), in the density. These are
the formulas of ``petab.v1.calculate.calculate_single_llh``, term by term.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

TRANSFORMATIONS = ("lin", "log", "log10")
DISTRIBUTIONS = ("normal", "laplace")

_LOG_LN10 = math.log(math.log(10.0))  # log of the log10 transformation's Jacobian factor ln(10)


def transform(value, transformation: str):
    """``value`` on the observable's scale: itself, ``log(value)`` or ``log10(value)``."""
    if transformation == "lin":
        return value
    if transformation == "log":
        return jnp.log(value)
    if transformation == "log10":
        return jnp.log10(value)
    raise ValueError(f"observableTransformation={transformation!r} is not one of {list(TRANSFORMATIONS)}.")


def negative_log_likelihood(measurement, simulation, sigma, transformation: str, distribution: str):
    """``-log pi(m | y, sigma)`` elementwise (arrays broadcast), PEtab v1's density.

    normal:  ``0.5 log(2 pi sigma^2 J^2) + 0.5 ((T(y) - T(m)) / sigma)^2``
    laplace: ``log(2 sigma J) + |T(y) - T(m)| / sigma``

    with ``T`` the transformation and ``J`` its Jacobian factor: 1 (lin), ``m`` (log),
    ``m log(10)`` (log10).
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"noiseDistribution={distribution!r} is not one of {list(DISTRIBUTIONS)}.")
    residual = transform(simulation, transformation) - transform(measurement, transformation)
    log_jacobian = 0.0 if transformation == "lin" else jnp.log(measurement)
    if transformation == "log10":
        log_jacobian = log_jacobian + _LOG_LN10
    if distribution == "normal":
        return 0.5 * jnp.log(2.0 * jnp.pi * sigma**2) + log_jacobian + 0.5 * (residual / sigma) ** 2
    return jnp.log(2.0 * sigma) + log_jacobian + jnp.abs(residual) / sigma
