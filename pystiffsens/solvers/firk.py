"""One stepper for every fully implicit Runge–Kutta method given as a :class:`ButcherTableau`.

The stage increments ``z_i = h sum_j a_ij f(t + c_j h, y + z_j)`` are solved together by
the simplified Newton iteration of :mod:`.newton` with the Jacobian ``J`` at the start of the
step, decoupled as in Hairer & Wanner II, Sect. IV.8: with ``A^-1 = T diag(mu) T^-1`` (computed
once per tableau in NumPy) the iteration matrix ``I - h A (x) J`` becomes one system
``(mu_k I - h J) w_k = r_k`` per eigenvalue. A real eigenvalue costs one real LU, a
complex-conjugate pair one complex LU, the conjugate's solution being the conjugate (for
Radau IIA with three stages this is RADAU5's real/complex transformation). ``A`` must be
nonsingular and diagonalizable. With the converged increments, ``h k = A^-1 z``,
``y1 = y + sum_i b_i h k_i``, and the dense output is the tableau's, as for :class:`ESDIRK`.

The error estimate ``b_error_explicit h f(t0, y0) + sum_i b_error_i h k_i`` is filtered through
``(I - h gamma0 J)^-1``, ``gamma0 = 1/mu`` for the smallest real eigenvalue ``mu`` of ``A^-1``
(Hairer & Wanner II, Sect. IV.8, eq. (8.20)), which reuses that eigenvalue's LU. With an
explicit term, an estimate above the tolerance is recomputed with ``f(t0, y0 + err)`` in place
of ``f(t0, y0)`` and filtered again, the estimate RADAU5 uses on the first step and after a
rejection; a stateless step cannot know of past rejections, so it is used whenever the first
estimate would reject the step (one more RHS evaluation and solve there). For a right-hand
side with quadrature variables (:mod:`.partitioned`) Newton runs on the implicit block only
and the stages' quadrature parts follow explicitly, ``h k_q,i = h G(t + c_i h, a + z_i)``.

An estimate of lower order than the method overestimates its error; RADAU5 therefore runs
with the tolerances ``rtol' = factor * rtol**exponent`` and ``atol' = atol * rtol'/rtol``
(factor 0.1, exponent 2/3 for its order-3 estimate of an order-5 method), and OrdinaryDiffEq's
RadauIIA5 does the same. ``tolerance_map=(factor, exponent)`` does this for the error test and
the Newton iteration: since ``atol' + rtol' |y| = (rtol'/rtol)(atol + rtol |y|)``, it divides
the error estimate by ``rtol'/rtol``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from .base import Attempt, OneStepState, RungeKuttaSolver, scaled_rms
from .newton import newton_tolerance, solve_implicit
from .partitioned import Jacobian, partition
from .tableaux import ButcherTableau

NEWTON_MAXITER = 7
#: Largest condition number of ``A`` and of its eigenvector matrix that the decoupling accepts.
MAX_CONDITION = 1e8


class _Block(NamedTuple):
    """One eigenvalue ``mu`` of ``A^-1`` (of a conjugate pair: the one with positive imaginary part)."""

    gamma: complex  #: ``1/mu``: the block solves ``(I - h gamma J) x = r`` and scales by ``gamma``
    row: np.ndarray  #: ``(T^-1 A^-1)[k]``: the block's right-hand side from the stage residuals
    column: np.ndarray  #: ``T[:, k]``: the block's share of the stage increments
    pair: bool  #: whether it stands for a complex-conjugate pair


def _decouple(tab: ButcherTableau) -> list[_Block]:
    """The eigen-decomposition of ``A^-1`` as blocks, real ones first by increasing ``mu``."""
    if np.linalg.cond(tab.A) > MAX_CONDITION:
        raise ValueError(
            f"tableau {tab.name!r}: A is singular or nearly so (e.g. an explicit stage), so FIRK cannot decouple its "
            "stages; a lower-triangular tableau runs with ESDIRK."
        )
    inverse = np.linalg.inv(tab.A)
    mu, vectors = np.linalg.eig(inverse)
    real = sorted((k for k in range(len(mu)) if mu[k].imag == 0.0), key=lambda k: mu[k].real)
    upper = [k for k in range(len(mu)) if mu[k].imag > 0.0]
    columns = [vectors[:, k].real for k in real]
    for k in upper:
        columns += [vectors[:, k], vectors[:, k].conj()]
    T = np.column_stack(columns) if len(columns) == len(mu) else None
    if T is None or np.linalg.cond(T) > MAX_CONDITION:
        raise ValueError(f"tableau {tab.name!r}: A is not diagonalizable, so FIRK cannot decouple its stages.")
    rows = np.linalg.solve(T, inverse)
    blocks = [_Block(1.0 / mu[k].real, rows[i].real, T[:, i].real, False) for i, k in enumerate(real)]
    for j, k in enumerate(upper):
        i = len(real) + 2 * j
        blocks.append(_Block(1.0 / mu[k], rows[i], T[:, i], True))
    return blocks


class FIRK(RungeKuttaSolver):
    """A fully implicit Runge–Kutta method defined by its tableau (RadauIIA5, Gauss, Lobatto IIIC).

    ``tolerance_map`` : ``(factor, exponent)`` of RADAU5's tolerance transformation (module
    docstring), None for the tolerances as given. ``aliases``, ``julia``, ``julia_gpu`` as for
    every solver.
    """

    def __init__(self, tableau: ButcherTableau, *, tolerance_map: tuple[float, float] | None = None, **names):
        super().__init__(tableau, **names)
        self.adaptive = tableau.adaptive
        self.tolerance_map = tolerance_map
        self._blocks = _decouple(tableau)
        self._A_inv = np.linalg.inv(tableau.A)
        if self.adaptive and self._blocks[0].pair:
            raise ValueError(
                f"tableau {tableau.name!r} has an error estimate but A^-1 has no real eigenvalue to filter it with; "
                "build it without b_error (fixed steps)."
            )

    def attempt(self, fn, t, h, state, args, tol):
        tab = self.tableau
        s = tab.stages
        y = state.y
        part = partition(fn)
        a = part.implicit(y)
        m = a.shape[0]
        ratio = self._tolerance_ratio(tol.rtol)
        scale = jnp.tile(ratio * part.implicit(tol.atol + tol.rtol * jnp.abs(y)), s)
        jacobian = Jacobian(part, t, y, args)
        systems = [jacobian.shifted(h * block.gamma) for block in self._blocks]
        t_stages = [t + c * h for c in tab.c]

        def G(z):
            Z = z.reshape(s, m)
            F = jnp.stack([part.f_implicit(t_stages[i], a + Z[i], args) for i in range(s)])
            return (Z - h * (tab.A @ F)).reshape(-1)

        z, newton = solve_implicit(G, jnp.zeros(s * m), _StageSolve(self._blocks, systems, s, m), scale,
                                   newton_tolerance(ratio * tol.rtol), NEWTON_MAXITER, part.residual_sparsity(s))
        Z = z.reshape(s, m)
        hk_q = jnp.stack([h * part.f_quadrature(t_stages[i], a + Z[i], args) for i in range(s)])
        hk = part.join(self._A_inv @ Z, hk_q)
        y_new = y + tab.b @ hk
        n_f = s * (newton.n_iter + part.quadrature_evals)
        error = tab.b_error @ hk
        if self.adaptive:
            error, n_error = self._error(fn, t, h, y, y_new, error, systems[0], part, args, tol)
            error = error / ratio
            n_f = n_f + n_error
        return Attempt(
            state=OneStepState(y_new),
            error=error,
            dense=jnp.concatenate([y[None], hk]),
            converged=newton.converged & jnp.all(jnp.isfinite(y_new)),
            n_f=n_f,
            n_jac=1 + newton.n_jac,
            n_lu=len(systems) + newton.n_jac,
        )

    def _tolerance_ratio(self, rtol):
        """``rtol' / rtol`` of the tolerance map (1 without one)."""
        if self.tolerance_map is None:
            return 1.0
        factor, exponent = self.tolerance_map
        return factor * rtol ** (exponent - 1.0)

    def _error(self, fn, t, h, y, y_new, stage_part, system, part, args, tol):
        """The filtered estimate (before the tolerance map) and its RHS evaluations (module docstring)."""
        weight = self.tableau.b_error_explicit
        if weight == 0.0:
            return system.solve(stage_part), 0
        error = system.solve(weight * h * fn(t, y, args) + stage_part)
        scale = self._tolerance_ratio(tol.rtol) * (tol.atol + tol.rtol * jnp.maximum(jnp.abs(y), jnp.abs(y_new)))
        refine = lax.stop_gradient(scaled_rms(error, scale, part.error_mask(y)) > 1.0)
        error = lax.cond(refine, lambda e: system.solve(weight * h * fn(t, y + e, args) + stage_part),
                         lambda e: e, error)
        return error, 1 + refine.astype(jnp.int32)


class _StageSolve:
    """``(I - h A (x) J)^-1 r`` for the stacked stage residual ``r``, block by block (module docstring)."""

    def __init__(self, blocks: list[_Block], systems: list, stages: int, size: int):
        self.blocks, self.systems, self.stages, self.size = blocks, systems, stages, size

    def solve(self, r):
        R = r.reshape(self.stages, self.size)
        dZ = jnp.zeros_like(R)
        for block, system in zip(self.blocks, self.systems):
            w = block.gamma * system.solve_implicit(block.row @ R)
            share = jnp.outer(block.column, w)
            dZ = dZ + (2.0 * share.real if block.pair else share)
        return dZ.reshape(-1)
