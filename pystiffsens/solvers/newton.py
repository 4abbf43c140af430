"""Simplified Newton iteration for the implicit stage equations, differentiated implicitly.

The iteration uses a frozen iteration matrix (an LU factorisation of ``I - c J``) and the
convergence test of Hairer & Wanner II, Sect. IV.8 (as in scipy's BDF/Radau): stop when
``rate / (1 - rate) * ||dz|| < tol`` and declare divergence when the contraction rate
reaches 1. Derivatives of the root with respect to everything ``G`` closes over follow
from the implicit function theorem (``jax.lax.custom_root``) with the exact Jacobian, so
they do not depend on the iteration count or on the frozen matrix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import lu_solve

from .base import scaled_rms

EPS = jnp.finfo(jnp.float64).eps


def newton_tolerance(rtol):
    """``max(10 eps / rtol, min(0.03, sqrt(rtol)))`` (Hairer & Wanner; scipy's BDF)."""
    return jnp.maximum(10 * EPS / rtol, jnp.minimum(0.03, jnp.sqrt(rtol)))


def _exact_linear_solve(g_lin, b):
    matrix = jax.jacfwd(g_lin)(b)
    return jnp.linalg.solve(matrix, b)


def solve_implicit(G, z0, lu, scale, tol, max_iter):
    """Root of ``G`` near ``z0``; returns ``(z, converged, n_iter)``.

    ``lu`` is the LU factorisation of an approximation of ``dG/dz``; ``scale`` the error
    weights ``atol + rtol |y|``; ``tol`` the Newton tolerance.
    """

    def iterate(g, z_init):
        def cond(carry):
            _, _, _, k, done, _ = carry
            return (k < max_iter) & ~done

        def body(carry):
            z, norm_old, _, k, _, _ = carry
            dz = -lu_solve(lu, g(z))
            norm = scaled_rms(dz, scale)
            rate = jnp.where(k > 0, norm / norm_old, jnp.nan)
            diverging = (k > 0) & ((rate >= 1) | (rate ** (max_iter - k) / (1 - rate) * norm > tol))
            finite = jnp.all(jnp.isfinite(dz))
            z_new = jnp.where(diverging | ~finite, z, z + dz)
            converged = finite & ~diverging & ((norm == 0) | ((k > 0) & (rate / (1 - rate) * norm < tol)))
            failed = diverging | ~finite
            return z_new, norm, rate, k + 1, converged | failed, converged

        init = (z_init, jnp.inf, jnp.nan, 0, False, False)
        z, _, _, k, _, converged = lax.while_loop(cond, body, init)
        # custom_root differentiates its aux output too, so report it as floats.
        return z, jnp.stack([converged.astype(z.dtype), k.astype(z.dtype)])

    z, (converged, n_iter) = lax.custom_root(G, z0, iterate, _exact_linear_solve, has_aux=True)
    return z, lax.stop_gradient(converged) > 0.5, lax.stop_gradient(n_iter).astype(jnp.int32)
