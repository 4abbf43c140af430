"""Variable-order, variable-step BDF in fixed-leading-coefficient form.

The history ``D`` is the backward differences of the solution, rescaled to the
new step whenever the step size changes, so the method's leading coefficient stays fixed
and one LU factorisation of ``I - h/alpha_k J`` serves each step (Shampine & Reichelt,
"The MATLAB ODE suite", SIAM J. Sci. Comput. 18 (1997); the same quasi-constant-step
family as SciML's FBDF and scipy's BDF). Orders 1–5; after ``k + 1`` steps of equal size
the order is chosen among ``k - 1, k, k + 1`` by comparing their error estimates. For a right-hand side with quadrature variables
(:mod:`.partitioned`) Newton runs on the implicit block only and the quadrature part of
the correction follows explicitly, ``d_q = c G(t, a) - psi_q``; the quadrature enters the
error estimates of the order choice only where it enters the error test.

``D`` is a tuple of row vectors, never one array, and rows are combined by
:func:`~pystiffsens.solvers.base.weighted_sum`: with forward-mode tangents an array of the
8 rows on ROBER with 3 parameters holds 576 bytes, and one such operation makes XLA:CPU
schedule every operation of the step loop concurrently (``base.weighted_sum``). Rows are
selected by masks, as the order is a traced value.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from .base import SAFETY, AbstractSolver, Attempt, scaled_rms, weighted_sum
from .newton import newton_tolerance, solve_implicit
from .partitioned import Jacobian, partition
from .stability import BDFStability, bdf

MAX_ORDER = 5
NEWTON_MAXITER = 4
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
_ROWS = MAX_ORDER + 3
# Pure BDF (no NDF correction): gamma_k = sum_{j<=k} 1/j, alpha_k = gamma_k, error constant 1/(k+1).
GAMMA = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, MAX_ORDER + 1))])
ALPHA = GAMMA
ERROR_CONST = 1.0 / np.arange(1, MAX_ORDER + 2)


class BDFState(NamedTuple):
    D: tuple  # MAX_ORDER + 3 rows of shape (n,): backward differences scaled to step h_D
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


def _row(D, k):
    """``D[k]`` for a traced row index ``k`` in ``0 .. len(D) - 1``."""
    return functools.reduce(lambda acc, i: jnp.where(k == i, D[i], acc), range(1, len(D)), D[0])


def _change_D(D, order, factor):
    """Rescale the differences to a step ``factor`` times the old one (rows 0..k)."""
    RU = _compute_R(order, factor) @ _compute_R(order, 1.0)
    size = MAX_ORDER + 1
    head = [weighted_sum([RU[j, i] for j in range(size)], D[:size]) for i in range(size)]
    return tuple(jnp.where(i <= order, head[i], D[i]) for i in range(size)) + tuple(D[size:])


def _update_D(D, d, order):
    """Differences after accepting the correction ``d`` (scipy's in-place loop, unrolled over the rows)."""
    new = [None] * _ROWS
    tail = jnp.zeros_like(d)  # sum_{j=i}^{k} D[j]
    for i in reversed(range(_ROWS)):
        tail = tail + jnp.where(i <= order, D[i], 0.0)
        new[i] = jnp.where(i <= order, tail + d, jnp.where(i == order + 1, d, D[i]))
    before = _row(D, jnp.minimum(order + 1, _ROWS - 1))
    return tuple(jnp.where(i == order + 2, d - before, new[i]) for i in range(_ROWS))


def _order_errors(D, order, tol, mask):
    """Error norms of the step at orders ``k - 1`` and ``k + 1`` (scipy's BDF), over the error-controlled components."""
    scale = tol.atol + tol.rtol * jnp.abs(D[0])
    const = jnp.asarray(ERROR_CONST)
    err_m = scaled_rms(const[jnp.maximum(order - 1, 0)] * _row(D, order), scale, mask)
    err_p = scaled_rms(const[jnp.minimum(order + 1, MAX_ORDER)] * _row(D, jnp.minimum(order + 2, _ROWS - 1)),
                       scale, mask)
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
        zero = jnp.zeros_like(y0)
        D = (y0, h0 * fn(t0, y0, args), *(zero for _ in range(_ROWS - 2)))
        return BDFState(D, jnp.asarray(1), jnp.asarray(h0, dtype=y0.dtype), jnp.asarray(0), jnp.full(2, jnp.inf, dtype=y0.dtype))

    def y_of(self, state):
        return state.D[0]

    def attempt(self, fn, t, h, state, args, tol):
        order = lax.stop_gradient(state.order)
        factor = lax.stop_gradient(h / state.h_D)
        D = lax.cond(factor == 1.0, lambda D: D, lambda D: _change_D(D, order, factor), state.D)
        n_equal = jnp.where(factor == 1.0, state.n_equal_steps, 0) + 1
        y_predict = weighted_sum([jnp.where(i <= order, 1.0, 0.0) for i in range(_ROWS)], D)
        alpha_k = jnp.asarray(ALPHA)[order]
        gamma = [jnp.where(i <= order, GAMMA[i], 0.0) for i in range(1, MAX_ORDER + 1)]
        psi = weighted_sum(gamma, D[1 : MAX_ORDER + 1]) / alpha_k
        c = h / alpha_k
        t_new = t + h
        part = partition(fn)
        scale = part.implicit(tol.atol + tol.rtol * jnp.abs(y_predict))
        lu = Jacobian(part, t_new, y_predict, args).shifted(c).lu
        yp_a, psi_a = part.implicit(y_predict), part.implicit(psi)

        def G(d):
            return d - c * part.f_implicit(t_new, yp_a + d, args) + psi_a

        d_a, newton = solve_implicit(G, jnp.zeros_like(yp_a), lu, scale, newton_tolerance(tol.rtol), NEWTON_MAXITER)
        d = part.join(d_a, c * part.f_quadrature(t_new, yp_a + d_a, args) - part.quadrature(psi))
        y_new = y_predict + d
        error = jnp.asarray(ERROR_CONST)[order] * d
        D_new = _update_D(D, d, order)
        order_errors = lax.stop_gradient(_order_errors(D_new, order, tol, part.error_mask(y_new)))
        new_state = BDFState(D_new, order, jnp.asarray(h, dtype=y_new.dtype), n_equal, order_errors)
        dense = (tuple(D_new[: MAX_ORDER + 1]), order)
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
        return D[0] + weighted_sum([p[i] for i in range(MAX_ORDER)], D[1:])
