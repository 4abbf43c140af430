"""One stepper for every diagonally implicit Runge–Kutta method given as a :class:`ButcherTableau`.

Stages are solved one after another by the simplified Newton iteration of
:mod:`.newton` with the exact Jacobian at the start of the step (Hairer & Wanner II,
Sect. IV.8); one LU factorisation per distinct diagonal coefficient. An explicit first
stage (ESDIRK) costs one RHS evaluation. The embedded error estimate is filtered through
``(I - h gamma J)^-1`` (Hairer & Wanner II, Sect. IV.8, eq. (8.20); as OrdinaryDiffEq's
``smooth_est``) so it stays bounded on stiff components.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import lu_factor, lu_solve

from .base import Attempt, OneStepSolver, OneStepState
from .newton import newton_tolerance, solve_implicit
from .tableaux import ButcherTableau

NEWTON_MAXITER = 7


class ESDIRK(OneStepSolver):
    """A (E)SDIRK method defined by its tableau (KenCarp4, implicit Euler, trapezoid)."""

    def __init__(self, tableau: ButcherTableau):
        super().__init__(tableau)
        self.adaptive = tableau.adaptive

    def attempt(self, fn, t, h, state, args, tol):
        tab = self.tableau
        y = state.y
        n = y.shape[0]
        scale = tol.atol + tol.rtol * jnp.abs(y)
        newton_tol = newton_tolerance(tol.rtol)
        J = jax.jacfwd(fn, argnums=1)(t, y, args)
        diagonals = sorted({float(d) for d in np.diag(tab.A) if d != 0.0})
        lus = {d: lu_factor(jnp.eye(n) - h * d * J) for d in diagonals}
        hk = []  # h * k_i
        converged = jnp.array(True)
        n_f, n_extra_jac = 0, 0
        for i in range(tab.stages):
            base = y
            for j in range(i):
                if tab.A[i, j] != 0.0:
                    base = base + tab.A[i, j] * hk[j]
            d = float(tab.A[i, i])
            t_i = t + tab.c[i] * h
            if d == 0.0:
                hk.append(h * fn(t_i, base, args))
                n_f += 1
                continue
            guess = base + d * hk[-1] if hk else base

            def G(z, base=base, d=d, t_i=t_i):
                return z - base - h * d * fn(t_i, z, args)

            z, newton = solve_implicit(G, guess, lus[d], scale, newton_tol, NEWTON_MAXITER)
            converged = converged & newton.converged
            n_f += newton.n_iter
            n_extra_jac += newton.n_jac
            hk.append((z - base) / d)
        hk = jnp.stack(hk)
        y_new = y + tab.b @ hk
        error = tab.b_error @ hk
        if self.adaptive:
            error = lu_solve(lus[diagonals[-1]], error)
        dense = jnp.concatenate([y[None], hk])
        return Attempt(
            state=OneStepState(y_new),
            error=error,
            dense=dense,
            converged=converged & jnp.all(jnp.isfinite(y_new)),
            n_f=n_f,
            n_jac=1 + n_extra_jac,
            n_lu=len(diagonals) + n_extra_jac,
        )

    def interpolate(self, dense, theta):
        """``y0 + sum_i b_i(θ) h k_i`` with ``b_i(θ) = sum_k dense[i, k] θ^(k+1)``."""
        coeffs = self.tableau.dense
        powers = theta ** jnp.arange(1, coeffs.shape[1] + 1)
        return dense[0] + (coeffs @ powers) @ dense[1:]
