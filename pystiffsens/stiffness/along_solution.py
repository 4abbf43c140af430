"""The stiffness of a problem along its solution: every proxy at the Jacobian of each accepted step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _x64
from .proxies import (
    SPECTRAL_RADIUS_METHODS,
    frobenius,
    singular_max,
    singular_ratio,
    spectral_radius,
    stiffness_ratio,
)

PROXY_COLUMNS = (
    "stiffness_ratio",
    "stiffness_ratio_real",
    *(f"spectral_radius_{method}" for method in SPECTRAL_RADIUS_METHODS),
    "singular_ratio",
    "singular_max",
    "frobenius",
)
"""Proxy columns of :func:`stiffness_along_solution`, in order."""


def rhs_jacobians(problem, ts, ys, params=None):
    """``d rhs / d y`` at each ``(ts[i], ys[i])``: an array ``(len(ts), n, n)`` by ``jax.jacfwd``."""
    params = problem.params if params is None else params
    jac = jax.jacfwd(problem.rhs, argnums=1)
    ts = jnp.asarray(ts, dtype=jnp.float64)
    ys = jnp.asarray(ys, dtype=jnp.float64)
    return jax.vmap(jac, in_axes=(0, 0, None))(ts, ys, params)


@jax.jit
def _proxies(J):
    return (
        stiffness_ratio(J),
        stiffness_ratio(J, part="real"),
        *(spectral_radius(J, method) for method in SPECTRAL_RADIUS_METHODS),
        singular_ratio(J),
        singular_max(J),
        frobenius(J),
    )


@_x64.float64
def stiffness_along_solution(problem, solution) -> pd.DataFrame:
    """Stiffness proxies of ``problem`` at every accepted step of ``solution``.

    Parameters
    ----------
    problem : :class:`~pystiffsens.Problem` that was solved (its ``rhs`` and ``params`` give
        the Jacobian ``d rhs / d y``, taken by ``jax.jacfwd``).
    solution : what :func:`pystiffsens.solve` returned for it; needs ``step_ts`` and
        ``step_ys`` (the accepted steps, starting at ``t0``).

    Returns
    -------
    DataFrame with one row per accepted step and columns ``problem``, ``solver``, ``step``,
    ``t`` and the proxies of :data:`PROXY_COLUMNS`: ``stiffness_ratio`` (``|lambda|`` max over
    min), ``stiffness_ratio_real`` (Lambert's ratio of the decaying real parts),
    ``spectral_radius_gelfand`` / ``_power`` / ``_eig``, ``singular_ratio``, ``singular_max`` and
    ``frobenius``
    (see :mod:`pystiffsens.stiffness.proxies`). Rows whose state is not finite get NaN
    proxies.
    """
    step_ts = getattr(solution, "step_ts", None)
    step_ys = getattr(solution, "step_ys", None)
    if step_ts is None or step_ys is None:
        raise ValueError(
            f"solution={type(solution).__name__} has no accepted steps (step_ts/step_ys is None); "
            "pass the Solution returned by pystiffsens.solve."
        )
    ts = np.asarray(step_ts, dtype=np.float64)
    ys = np.asarray(step_ys, dtype=np.float64)
    n = np.asarray(problem.y0).shape[0]
    if ts.ndim != 1 or ys.shape != (ts.shape[0], n):
        raise ValueError(
            f"solution.step_ts has shape {ts.shape} and step_ys {ys.shape}; expected (m,) and (m, {n}) "
            f"for problem {problem.label!r}."
        )
    finite = np.isfinite(ts) & np.all(np.isfinite(ys), axis=1)
    values = np.full((len(PROXY_COLUMNS), ts.shape[0]), np.nan)
    if finite.any():
        J = rhs_jacobians(problem, ts[finite], ys[finite])
        values[:, finite] = np.asarray(jnp.stack(_proxies(J)))
    frame = pd.DataFrame(dict(zip(PROXY_COLUMNS, values)))
    frame.insert(0, "t", ts)
    frame.insert(0, "step", np.arange(ts.shape[0]))
    frame.insert(0, "solver", getattr(solution, "solver", ""))
    frame.insert(0, "problem", problem.label)
    return frame
