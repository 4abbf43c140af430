"""One stepper for every Rosenbrock–Wanner method given as a :class:`RosenbrockTableau`.

Implements the transformed stage equations of Hairer & Wanner II, Sect. IV.7, eq. (7.25),
with the exact Jacobian (by JAX AD) refreshed every step, one LU factorisation per step,
and the method's stiff-aware dense output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import lu_factor, lu_solve

from .base import Attempt, OneStepSolver, OneStepState
from .tableaux import RosenbrockTableau


class Rosenbrock(OneStepSolver):
    """A Rosenbrock–Wanner method defined by its tableau (Rodas4, Rodas5P, ...)."""

    adaptive = True

    def __init__(self, tableau: RosenbrockTableau):
        super().__init__(tableau)

    def attempt(self, fn, t, h, state, args, tol):
        tab = self.tableau
        y = state.y
        n = y.shape[0]
        J = jax.jacfwd(fn, argnums=1)(t, y, args)
        _, f_t = jax.jvp(lambda tt: fn(tt, y, args), (t,), (jnp.ones_like(t),))
        lu = lu_factor(jnp.eye(n) / (h * tab.gamma) - J)
        U = []
        for i in range(tab.stages):
            y_i = y
            for j in range(i):
                if tab.a[i, j] != 0.0:
                    y_i = y_i + tab.a[i, j] * U[j]
            rhs = fn(t + tab.alpha[i] * h, y_i, args) + tab.gamma_sum[i] * h * f_t
            for j in range(i):
                if tab.C[i, j] != 0.0:
                    rhs = rhs + (tab.C[i, j] / h) * U[j]
            U.append(lu_solve(lu, rhs))
        U = jnp.stack(U)
        y_new = y + tab.m @ U
        error = tab.m_error @ U
        dense = jnp.concatenate([jnp.stack([y, y_new]), tab.H @ U])
        return Attempt(
            state=OneStepState(y_new),
            error=error,
            dense=dense,
            converged=jnp.all(jnp.isfinite(y_new)),
            n_f=tab.stages + 1,
            n_jac=1,
            n_lu=1,
        )

    def interpolate(self, dense, theta):
        """``(1 - θ) y0 + θ (y1 + (1 - θ)(K1 + θ (K2 + θ (K3 ...))))`` (Horner form)."""
        y0, y1, K = dense[0], dense[1], dense[2:]
        acc = K[-1]
        for r in range(K.shape[0] - 2, -1, -1):
            acc = K[r] + theta * acc
        return (1 - theta) * y0 + theta * (y1 + (1 - theta) * acc)
