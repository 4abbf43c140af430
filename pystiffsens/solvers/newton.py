"""Newton iteration for the implicit stage equations, differentiated implicitly.

The iteration first runs as simplified Newton with a frozen iteration matrix (an LU
factorisation of ``I - c J`` with the Jacobian from the start of the step) and the
convergence test of Hairer & Wanner II, Sect. IV.8 (as in scipy's BDF/Radau): stop when
``rate / (1 - rate) * ||dz|| < tol`` (or the update is negligible) and declare failure
when the contraction rate reaches 1 or the iteration budget runs out. On failure it
restarts from the initial guess as full Newton, re-evaluating ``dG/dz`` at every iterate
(as Hairer & Wanner refresh a stale Jacobian before reducing the step): this rescues
stages whose Jacobian changes strongly across the step, e.g. ROBER's first step from
``y2 = 0`` or an adjoint driven by an interpolated state. Derivatives of the root with
respect to everything ``G`` closes over follow from the implicit function theorem
(``jax.lax.custom_root``) with the exact Jacobian, so they depend neither on the
iteration count nor on the matrix used.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..lanes import every_lane, while_loop
from ..sparsity import Sparsity, jacobian
from .base import scaled_rms
from .linear import lu_factor

EPS = jnp.finfo(jnp.float64).eps
#: An update this small (in error-weight units) counts as converged, as in OrdinaryDiffEq's nlsolve.
NEGLIGIBLE_UPDATE = 1e-5
SIMPLIFIED, FULL = 0, 1
#: Iteration budget of the full-Newton fallback.
FULL_NEWTON_MAXITER = 10


class NewtonStats(NamedTuple):
    converged: jnp.ndarray
    n_iter: jnp.ndarray  #: RHS evaluations (one per iteration)
    n_jac: jnp.ndarray  #: Jacobians evaluated by the full-Newton fallback (each with an LU)


#: OrdinaryDiffEq's ``NLNewton`` default ``kappa``: Newton stops when ``rate / (1 - rate) * ||dz|| < kappa``.
KAPPA = 0.01


def newton_tolerance(rtol):
    """``max(10 eps / rtol, min(0.03, sqrt(rtol)))`` (Hairer & Wanner's RADAU5; scipy's BDF and Radau).

    Used by :class:`~pystiffsens.solvers.FIRK`, whose tolerances are mapped as RADAU5's.
    """
    return jnp.maximum(10 * EPS / rtol, jnp.minimum(0.03, jnp.sqrt(rtol)))


def kappa_tolerance(rtol):
    """``max(10 eps / rtol, KAPPA)``: OrdinaryDiffEq's Newton tolerance, used by the ESDIRK and BDF steppers as by
    SciML's KenCarp4, Kvaerno5, TRBDF2 and FBDF.

    Below ``rtol = 1e-4`` it is looser than :func:`newton_tolerance` (``sqrt(rtol)``: 1e-4 at
    ``rtol = 1e-8``, a hundredth of what the step's own error test allows). On ROBER at rtol
    1e-8 KenCarp4 then takes 2363 right-hand-side evaluations instead of 3184 for the same
    steps and a solution as accurate (benchmarks/README.md, section 6).
    """
    return jnp.maximum(10 * EPS / rtol, KAPPA)


def solve_implicit(G, z0, lu, scale, tol, max_iter, sparsity: Sparsity | None = None) -> tuple[jnp.ndarray, NewtonStats]:
    """Root of ``G`` near ``z0``.

    ``lu`` is the :class:`~pystiffsens.solvers.linear.LU` factorisation of an approximation of ``dG/dz``; ``scale`` the error
    weights ``atol + rtol |y|``; ``tol`` the Newton tolerance; ``max_iter`` the budget of
    the simplified phase (the full phase has :data:`FULL_NEWTON_MAXITER`); ``sparsity`` the
    pattern of ``dG/dz``, where known (:mod:`pystiffsens.sparsity`).
    """

    def exact_linear_solve(g_lin, b):
        """``(dG/dz)^-1 b`` with the exact ``dG/dz`` at the root (the implicit-function theorem's solve), by the
        package's LU (:mod:`.linear`: substitution on small systems, cheaper there than ``jnp.linalg.solve``)."""
        return lu_factor(jacobian(g_lin, b, sparsity), sparsity=sparsity).solve(b)

    def iterate(g, z_init):
        def update(mode, z):
            def full(z):
                return -lu_factor(jacobian(g, z, sparsity), sparsity=sparsity).solve(g(z))

            return lax.cond(mode == FULL, full, lambda z: -lu.solve(g(z)), z)

        def cond(c):
            return ~c["done"]

        def body(c):
            z, k, mode = c["z"], c["k"], c["mode"]
            dz = update(mode, z)
            norm = scaled_rms(dz, scale)
            rate = jnp.where(k > 0, norm / c["norm"], jnp.nan)
            # An update already at rounding level has converged; its "rate" would be noise / noise.
            negligible = norm <= NEGLIGIBLE_UPDATE
            # The predictive test assumes linear contraction, so only simplified Newton uses it;
            # full Newton converges quadratically and is stopped only by a rate >= 1.
            too_slow = (mode == SIMPLIFIED) & (rate ** (max_iter - k) / (1 - rate) * norm > tol)
            diverging = (k > 0) & ~negligible & ((rate >= 1) | too_slow)
            finite = jnp.all(jnp.isfinite(dz))
            converged = finite & ~diverging & (negligible | ((k > 0) & (rate / (1 - rate) * norm < tol)))
            budget = jnp.where(mode == FULL, FULL_NEWTON_MAXITER, max_iter)
            failed = ~converged & (diverging | ~finite | (k + 1 >= budget))
            restart = failed & (mode == SIMPLIFIED)
            z_new = jnp.where(diverging, z, z + dz)
            # Non-finite values in the last phase poison the iterate so the integrator reports Unstable.
            z_new = jnp.where(~finite & (mode == FULL), jnp.nan, z_new)
            return dict(
                z=jnp.where(restart, z_init, z_new),
                norm=norm,
                k=jnp.where(restart, 0, k + 1),
                mode=jnp.where(restart, FULL, mode),
                done=converged | (failed & (mode == FULL)),
                converged=converged,
                n_iter=c["n_iter"] + 1,
                n_jac=c["n_jac"] + (mode == FULL),
            )

        init = dict(z=z_init, norm=jnp.inf, k=0, mode=SIMPLIFIED, done=False, converged=False, n_iter=0, n_jac=0)
        out = while_loop(cond, body, every_lane(jax.tree_util.tree_map(jnp.asarray, init)))
        # custom_root differentiates its aux output too, so report it as floats.
        aux = jnp.stack([out["converged"], out["n_iter"], out["n_jac"]]).astype(out["z"].dtype)
        return out["z"], aux

    z, aux = lax.custom_root(G, z0, iterate, exact_linear_solve, has_aux=True)
    aux = lax.stop_gradient(aux)
    return z, NewtonStats(aux[0] > 0.5, aux[1].astype(jnp.int32), aux[2].astype(jnp.int32))
