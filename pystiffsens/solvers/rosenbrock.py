"""One stepper for every Rosenbrock–Wanner method given as a :class:`RosenbrockTableau`.

Implements the transformed stage equations of Hairer & Wanner II, Sect. IV.7, eq. (7.25),
with the exact Jacobian (by JAX AD) refreshed every step, one LU factorisation per step,
and the method's stiff-aware dense output. For a right-hand side with quadrature
variables (:mod:`.partitioned`) only the implicit block is factorised and each stage's
quadrature part costs one Jacobian-vector product of the quadrature right-hand side.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import Attempt, OneStepSolver, OneStepState, weighted_sum
from .partitioned import Jacobian, partition
from .tableaux import RosenbrockTableau


class Rosenbrock(OneStepSolver):
    """A Rosenbrock–Wanner method defined by its tableau (Rodas4, Rodas5P, ...)."""

    adaptive = True

    def __init__(self, tableau: RosenbrockTableau, **names):
        super().__init__(tableau, **names)

    def attempt(self, fn, t, h, state, args, tol):
        tab = self.tableau
        y = state.y
        part = partition(fn)
        a = part.implicit(y)
        jacobian = Jacobian(part, t, y, args)
        # (I/(h gamma) - J) U_i = r_i, block by block (partitioned.py): the implicit parts with the LU
        # of I/(h gamma) - dF/da, then every quadrature part from U_q = h gamma (r_q + dG/da U_a).
        system = jacobian.shifted(1.0, h * tab.gamma)
        _, (f_t, g_t) = jax.jvp(lambda tt: part.f_both(tt, a, args), (t,), (jnp.ones_like(t),))

        inverse_h = 1.0 / h  # one division: XLA gives each division a kernel of its own, where products fuse

        def stage_rhs(i, f_i, f_t, U):
            rhs = f_i + tab.gamma_sum[i] * h * f_t
            for j in range(i):
                if tab.C[i, j] != 0.0:
                    rhs = rhs + (tab.C[i, j] * inverse_h) * U[j]
            return rhs

        U, G = [], []
        for i in range(tab.stages):
            a_i = a
            for j in range(i):
                if tab.a[i, j] != 0.0:
                    a_i = a_i + tab.a[i, j] * U[j]
            f_i, g_i = part.f_both(t + tab.alpha[i] * h, a_i, args)
            U.append(system.solve_implicit(stage_rhs(i, f_i, f_t, U)))
            G.append(g_i)
        if part.has_quadrature:
            B_U = jacobian.apply_B(jnp.stack(U))  # one batched product for all stages
            U_q: list = []
            for i in range(tab.stages):
                U_q.append(system.solve_quadrature(stage_rhs(i, G[i], g_t, U_q), B_U[i]))
            U = [part.join(U[i], U_q[i]) for i in range(tab.stages)]
        y_new = y + weighted_sum(tab.m.tolist(), U)
        error = weighted_sum(tab.m_error.tolist(), U)
        dense = (y, y_new, *(weighted_sum(row, U) for row in tab.H.tolist()))
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
        for r in range(len(K) - 2, -1, -1):
            acc = K[r] + theta * acc
        return (1 - theta) * y0 + theta * (y1 + (1 - theta) * acc)
