"""Variable-order, variable-step BDF in fixed-leading-coefficient form.

The history is the backward differences ``D`` of the solution, rescaled to the
new step whenever the step size changes, so the method's leading coefficient stays fixed
and one LU factorisation of ``I - h/alpha_k J`` serves each step (Shampine & Reichelt,
"The MATLAB ODE suite", SIAM J. Sci. Comput. 18 (1997); the same quasi-constant-step
family as SciML's FBDF and scipy's BDF). Orders 1–5; after ``k + 1`` steps of equal size
the order is chosen among ``k - 1, k, k + 1`` by comparing their error estimates. For a right-hand side with quadrature variables
(:mod:`.partitioned`) Newton runs on the implicit block only and the quadrature part of
the correction follows explicitly, ``d_q = c G(t, a) - psi_q``; the quadrature enters the
error estimates of the order choice only where it enters the error test.

The differences of orders 0..5, which every step reads and rescales, and the two beyond them,
which only the update and the order choice touch, are two arrays. With forward-mode tangents
one array of all 8 rows holds 576 bytes on ROBER with its 3 parameters, and a single
operation that large makes XLA:CPU schedule every operation of the step loop concurrently
(:func:`pystiffsens.solvers.base.weighted_sum`): the compiled gradient took 7.7 ms instead of
2.8 ms (ROBER, rtol 1e-8; benchmarks/README.md, sections 1 and 6).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from .base import SAFETY, AbstractSolver, Attempt, scaled_rms
from .linear import fused_matmul
from .newton import kappa_tolerance, solve_implicit
from .partitioned import Jacobian, partition
from .stability import BDFStability, bdf

MAX_ORDER = 5
NEWTON_MAXITER = 4
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
_ROWS = MAX_ORDER + 3
#: The orders of the rows of ``BDFState.D`` and of ``BDFState.D_beyond``, as columns (compared with the traced order).
_ORDERS = np.arange(MAX_ORDER + 1)[:, None]
_ORDERS_BEYOND = np.arange(MAX_ORDER + 1, _ROWS)[:, None]
# Pure BDF (no NDF correction): gamma_k = sum_{j<=k} 1/j, alpha_k = gamma_k, error constant 1/(k+1).
GAMMA = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, MAX_ORDER + 1))])
ALPHA = GAMMA
ERROR_CONST = 1.0 / np.arange(1, MAX_ORDER + 2)


class BDFState(NamedTuple):
    D: jnp.ndarray  # (MAX_ORDER + 1, n) backward differences of orders 0..MAX_ORDER, scaled to step h_D
    D_beyond: jnp.ndarray  # (2, n) the differences of orders MAX_ORDER + 1 and MAX_ORDER + 2
    order: jnp.ndarray  # current order k
    h_D: jnp.ndarray  # the step size D is expressed in
    n_equal_steps: jnp.ndarray  # steps taken since the last change of step size
    order_errors: jnp.ndarray  # (2,) error norms at orders k - 1 and k + 1 after the step (drive the order choice)

    @property
    def y(self):
        return self.D[0]


def _compute_R(order, factor):
    """Shampine–Reichelt's R(k, factor) as a (MAX_ORDER+1)^2 matrix, zero beyond row/col k."""
    size = MAX_ORDER + 1
    i = jnp.arange(1, size)[:, None]
    j = jnp.arange(1, size)[None, :]
    M = jnp.zeros((size, size)).at[1:, 1:].set((i - 1 - factor * j) / i).at[0].set(1.0)
    R = jnp.cumprod(M, axis=0)
    idx = jnp.arange(size)
    inside = (idx[:, None] <= order) & (idx[None, :] <= order)
    return jnp.where(inside, R, 0.0)


def _change_D(D, order, factor):
    """Rescale the differences to a step ``factor`` times the old one (rows 0..k).

    The two 6 x 6 products are written out (:func:`~pystiffsens.solvers.linear.fused_matmul`): as
    ``dot``s, each a call of its own on XLA:CPU, they took 12 % of ROBER's compiled FBDF gradient (benchmarks/README.md, section 6).
    """
    RU = fused_matmul(_compute_R(order, factor), _compute_R(order, 1.0))
    return jnp.where(_ORDERS <= order, fused_matmul(RU.T, D), D)


def _row(D, D_beyond, i):
    """Difference of order ``i`` (traced, ``0 <= i < _ROWS``) from the two arrays."""
    return jnp.where(i <= MAX_ORDER, D[jnp.minimum(i, MAX_ORDER)], D_beyond[jnp.clip(i - MAX_ORDER - 1, 0, 1)])


def _update_D(D, D_beyond, d, order):
    """Differences after accepting the correction ``d`` (scipy's in-place loop, vectorised)."""
    upto = jnp.where(_ORDERS <= order, D, 0.0)
    tail_sums = jnp.cumsum(upto[::-1], axis=0)[::-1]  # sum_{j=i}^{k} D[j]
    next_before = _row(D, D_beyond, order + 1)
    new = jnp.where(_ORDERS <= order, tail_sums + d, D)
    new = jnp.where(_ORDERS == order + 1, d, new)
    new = jnp.where(_ORDERS == order + 2, d - next_before, new)
    beyond = jnp.where(_ORDERS_BEYOND == order + 1, d, D_beyond)
    beyond = jnp.where(_ORDERS_BEYOND == order + 2, d - next_before, beyond)
    return new, beyond


def _order_errors(D, D_beyond, order, tol, mask):
    """Error norms of the step at orders ``k - 1`` and ``k + 1`` (scipy's BDF), over the error-controlled components."""
    scale = tol.atol + tol.rtol * jnp.abs(D[0])
    const = jnp.asarray(ERROR_CONST)
    err_m = scaled_rms(const[jnp.maximum(order - 1, 0)] * D[order], scale, mask)
    err_p = scaled_rms(const[jnp.minimum(order + 1, MAX_ORDER)] * _row(D, D_beyond, order + 2), scale, mask)
    return jnp.stack([err_m, err_p])


class BDF(AbstractSolver):
    """Fixed-leading-coefficient BDF.

    ``BDF(max_order=5, adaptive=True)`` is FBDF (variable order 1–5, variable step).
    ``BDF(max_order=2, adaptive=False)`` is the fixed-step BDF2 reference: its first step is
    implicit Euler, the following ones BDF2.
    """

    control_fields = ("order", "h_D", "n_equal_steps", "order_errors")

    def __init__(self, name: str, max_order: int, adaptive: bool, *, aliases=(), julia: str | None = None,
                 julia_gpu: str | None = None):
        if not 1 <= max_order <= MAX_ORDER:
            raise ValueError(f"max_order={max_order!r} must be in 1..{MAX_ORDER}.")
        self._names(name, aliases, julia, julia_gpu)
        self.order = max_order
        self.max_order = max_order
        self.adaptive = adaptive

    def stability(self) -> BDFStability:
        """BDF-``max_order``'s characteristic root, for the fixed-step reference (whose first steps ramp up
        the order, :meth:`~pystiffsens.solvers.stability.BDFStability.n_step`); ``ValueError`` for the
        variable-order method, which no single stability function describes."""
        if not self.adaptive:
            return bdf(self.max_order)
        exponents = ", ".join(f"BDF{k}: {bdf(k).decay_exponent:.4g}" for k in range(1, self.max_order + 1))
        raise ValueError(
            f"method={self.name!r} is variable-order BDF (orders 1 to {self.max_order}), so no single stability "
            f"function describes it; pass the order in use, one of {[f'BDF{k}' for k in range(1, self.max_order + 1)]} "
            f"(decay exponents {exponents})."
        )

    def init(self, fn, t0, y0, args, h0):
        D = jnp.zeros((MAX_ORDER + 1, y0.shape[0]), dtype=y0.dtype)
        D = D.at[0].set(y0).at[1].set(h0 * fn(t0, y0, args))
        beyond = jnp.zeros((_ROWS - MAX_ORDER - 1, y0.shape[0]), dtype=y0.dtype)
        return BDFState(D, beyond, jnp.asarray(1), jnp.asarray(h0, dtype=y0.dtype), jnp.asarray(0),
                        jnp.full(2, jnp.inf, dtype=y0.dtype))

    def y_of(self, state):
        return state.D[0]

    def attempt(self, fn, t, h, state, args, tol):
        order = lax.stop_gradient(state.order)
        factor = lax.stop_gradient(h / state.h_D)
        D = lax.cond(factor == 1.0, lambda D: D, lambda D: _change_D(D, order, factor), state.D)
        n_equal = jnp.where(factor == 1.0, state.n_equal_steps, 0) + 1
        y_predict = jnp.sum(jnp.where(_ORDERS <= order, D, 0.0), axis=0)
        alpha_k = jnp.asarray(ALPHA)[order]
        orders = _ORDERS[:, 0]
        weights = jnp.where((orders >= 1) & (orders <= order), jnp.asarray(GAMMA), 0.0)
        psi = weights @ D / alpha_k
        c = h / alpha_k
        t_new = t + h
        part = partition(fn)
        scale = part.implicit(tol.atol + tol.rtol * jnp.abs(y_predict))
        lu = Jacobian(part, t_new, y_predict, args).shifted(c).lu
        yp_a, psi_a = part.implicit(y_predict), part.implicit(psi)

        def G(d):
            return d - c * part.f_implicit(t_new, yp_a + d, args) + psi_a

        d_a, newton = solve_implicit(G, jnp.zeros_like(yp_a), lu, scale, kappa_tolerance(tol.rtol), NEWTON_MAXITER,
                                     part.residual_sparsity())
        d = part.join(d_a, c * part.f_quadrature(t_new, yp_a + d_a, args) - part.quadrature(psi))
        y_new = y_predict + d
        error = jnp.asarray(ERROR_CONST)[order] * d
        D_new, D_beyond = _update_D(D, state.D_beyond, d, order)
        order_errors = lax.stop_gradient(_order_errors(D_new, D_beyond, order, tol, part.error_mask(y_new)))
        new_state = BDFState(D_new, D_beyond, order, jnp.asarray(h, dtype=D.dtype), n_equal, order_errors)
        dense = (D_new, order)
        return Attempt(
            state=new_state,
            error=error,
            dense=dense,
            converged=newton.converged & jnp.all(jnp.isfinite(y_new)),
            n_f=newton.n_iter + part.quadrature_evals,
            n_jac=1 + newton.n_jac,
            n_lu=1 + newton.n_jac,
        )

    def accept(self, state, err_norm, h, tol):
        if not self.adaptive:
            return state._replace(order=jnp.minimum(state.order + 1, self.max_order)), h
        order = state.order
        err_m = jnp.where(order > 1, state.order_errors[0], jnp.inf)
        err_p = jnp.where(order < self.max_order, state.order_errors[1], jnp.inf)
        norms = jnp.stack([err_m, err_norm, err_p])
        exponents = -1.0 / (order + jnp.arange(3))
        factors = jnp.where(norms > 0, norms, 1e-10) ** exponents
        factors = jnp.where(jnp.isfinite(norms), factors, 0.0)
        best = jnp.argmax(factors)
        ready = state.n_equal_steps >= order + 1
        new_order = jnp.where(ready, order + best - 1, order)
        factor = jnp.where(ready, jnp.minimum(MAX_FACTOR, SAFETY * factors[best]), 1.0)
        return state._replace(order=new_order), h * factor

    def restart(self, state):
        """Order one, from the step just taken: the higher differences span the switch, where the derivative jumps,
        and would say that every step after it is wrong."""
        return state._replace(D=jnp.where(_ORDERS <= 1, state.D, 0.0), D_beyond=jnp.zeros_like(state.D_beyond),
                              order=jnp.ones_like(state.order), n_equal_steps=jnp.zeros_like(state.n_equal_steps),
                              order_errors=jnp.full_like(state.order_errors, jnp.inf))

    def reject(self, state, err_norm, h, tol):
        raw = SAFETY * jnp.where(err_norm > 0, err_norm, 1e-10) ** (-1.0 / (state.order + 1))
        raw = jnp.where(jnp.isfinite(raw), raw, MIN_FACTOR)
        return h * jnp.clip(raw, MIN_FACTOR, 1.0)

    def interpolate(self, dense, theta):
        """Newton form through the stored differences (Shampine & Reichelt 1997)."""
        D, order = dense
        j = jnp.arange(MAX_ORDER)
        x = (theta - 1.0 + j) / (1.0 + j)
        p = jnp.where(j < order, jnp.cumprod(x), 0.0)
        return D[0] + p @ D[1:]
