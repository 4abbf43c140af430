"""One stepper for every diagonally implicit Runge–Kutta method given as a :class:`ButcherTableau`.

Stages are solved one after another by the simplified Newton iteration of
:mod:`.newton` with the exact Jacobian at the start of the step (Hairer & Wanner II,
Sect. IV.8); one LU factorisation per distinct diagonal coefficient. An explicit first
stage (ESDIRK) costs one RHS evaluation. The embedded error estimate is filtered through
``(I - h gamma J)^-1`` (Hairer & Wanner II, Sect. IV.8, eq. (8.20); as OrdinaryDiffEq's
``smooth_est``) so it stays bounded on stiff components. For a right-hand side with quadrature variables
(:mod:`.partitioned`) Newton runs on the implicit block only and each stage's quadrature
part follows explicitly, ``h k_q = h G(t_i, a_i)``, from the converged implicit stage.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .base import Attempt, OneStepSolver, OneStepState
from .newton import newton_tolerance, solve_implicit
from .partitioned import Jacobian, partition
from .tableaux import ButcherTableau

NEWTON_MAXITER = 7


class ESDIRK(OneStepSolver):
    """A (E)SDIRK method defined by its tableau (KenCarp4, implicit Euler, trapezoid)."""

    def __init__(self, tableau: ButcherTableau, **names):
        super().__init__(tableau, **names)
        self.adaptive = tableau.adaptive

    def attempt(self, fn, t, h, state, args, tol):
        tab = self.tableau
        y = state.y
        part = partition(fn)
        scale = part.implicit(tol.atol + tol.rtol * jnp.abs(y))
        newton_tol = newton_tolerance(tol.rtol)
        jacobian = Jacobian(part, t, y, args)
        diagonals = sorted({float(d) for d in np.diag(tab.A) if d != 0.0})
        systems = {d: jacobian.shifted(h * d) for d in diagonals}
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
            guess = part.implicit(base + d * hk[-1] if hk else base)
            base_a = part.implicit(base)

            def G(z, base=base_a, d=d, t_i=t_i):
                return z - base - h * d * part.f_implicit(t_i, z, args)

            z, newton = solve_implicit(G, guess, systems[d].lu, scale, newton_tol, NEWTON_MAXITER)
            converged = converged & newton.converged
            n_f += newton.n_iter + part.quadrature_evals
            n_extra_jac += newton.n_jac
            hk.append(part.join((z - base_a) / d, h * part.f_quadrature(t_i, z, args)))
        hk = jnp.stack(hk)
        y_new = y + tab.b @ hk
        error = tab.b_error @ hk
        if self.adaptive:
            error = systems[diagonals[-1]].solve(error)
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
