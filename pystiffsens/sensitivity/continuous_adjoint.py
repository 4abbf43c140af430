"""Machinery shared by the continuous adjoints: backward solves between saved times.

The adjoint ``lambda`` of ``L(y(t_1), ..., y(t_K))`` obeys ``lambda' = -J^T lambda``
backward in time, jumps by ``dL/dy(t_k)`` at every saved time, and the parameter
gradient is ``dL/dp + int_{t0}^{T} lambda^T df/dp dt`` (Cao, Li, Petzold & Serban, SIAM
J. Sci. Comput. 24 (2003)). Backward solves use the same solver on the time-reversed
system ``z'(s) = -F(-s, z)``, segment by segment between saved times (a ``lax.scan`` over
segments), so multistep methods restart cleanly after each jump.

The parameter integral ``mu`` is a quadrature (CVODES's quadrature variables): the
backward right-hand side is a :class:`~pystiffsens.solvers.partitioned.QuadratureRHS`
whose implicit part is ``lambda`` (or ``(y, lambda)``), so every solver factorises and
iterates on that part only and advances ``mu`` with its stage values. By default ``mu``
is left out of the error test (CVODES's ``errconQ`` defaults to false).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ..integrate import Trajectory, integrate, zero_counters
from ..problem import SparseRHS
from ..solvers.partitioned import QuadratureRHS
from .base import combine_status


def segment_bounds(problem):
    """(upper, lower) time of each backward segment, latest first, and the stop index at each lower end (-1 at t0)."""
    stops = jnp.asarray(problem.stops)
    K = stops.shape[0]
    upper = stops[::-1]
    lower = jnp.concatenate([stops[:-1][::-1], jnp.asarray(problem.t0)[None]])
    lower_index = jnp.arange(K - 2, -2, -1)
    return upper, lower, lower_index


def reversed_rhs(rhs):
    """``z'(s) = -rhs(-s, z)``: integrating in ``s`` from ``-t_hi`` to ``-t_lo`` runs ``t`` backward."""
    if isinstance(rhs, QuadratureRHS):
        return rhs.time_reversed()
    if isinstance(rhs, SparseRHS):
        return SparseRHS(reversed_rhs(rhs.fn), rhs.jac_sparsity)
    return lambda s, z, args: -rhs(-s, z, args)


def backward_segments(
    problem, solver, theta, options, saved_steps, adjoint_rhs, z_final, jump, *, per_segment=None, extra0=None,
    record_dense=False, accumulate=None,
):
    """Integrate ``adjoint_rhs`` backward across every segment, with the forward solve's ``options``.

    Parameters
    ----------
    saved_steps : length of the records of a recording backward solve (``record_dense``).
    adjoint_rhs : ``(t, z, theta) -> dz/dt`` in forward time, or a
        :class:`~pystiffsens.solvers.partitioned.QuadratureRHS` (its error mask is applied).
    z_final : state at the final time (the jump there already applied).
    jump : ``(z, k) -> z`` applied on reaching saved time ``k`` (not at ``t0``).
    per_segment : optional ``(trajectory, z_end, extra) -> extra`` run after each segment's
        solve (a consistency check, or collecting ``trajectory.accumulated``), starting from ``extra0``.
    accumulate : optional ``(fn, init)`` passed to each segment's
        :func:`~pystiffsens.integrate.integrate`: a sum over its backward steps, in
        ``trajectory.accumulated``.

    Returns ``(z at t0, status, summed stats, extra, buffer_full)``, the last whether a
    recording backward solve stopped because its step buffers were full.
    """
    upper, lower, lower_index = segment_bounds(problem)
    backward = reversed_rhs(adjoint_rhs)
    error_mask = backward.error_mask(z_final.shape[0]) if isinstance(backward, QuadratureRHS) else None

    def segment(carry, xs):
        z, status, stats, extra, full = carry
        t_hi, t_lo, k = xs
        traj: Trajectory = integrate(
            backward, solver, z, theta, t0=-t_hi, stops=(-t_lo)[None], options=options, saved_steps=saved_steps,
            record_dense=record_dense, error_mask=error_mask, accumulate=accumulate,
        )
        z_end = traj.ys[0]
        if per_segment is not None:
            extra = per_segment(traj, z_end, extra)
        z_next = jnp.where(k >= 0, jump(z_end, jnp.maximum(k, 0)), z_end)
        stats = {name: stats[name] + traj.stats[name] for name in stats}
        return (z_next, combine_status(status, traj.status), stats, extra, full | traj.buffer_full), None

    extra0 = jnp.zeros(()) if extra0 is None else extra0
    (z, status, stats, extra, full), _ = lax.scan(
        segment, (z_final, jnp.asarray(0), zero_counters(), extra0, jnp.asarray(False)), (upper, lower, lower_index)
    )
    return z, status, stats, extra, full


def vjp_rhs(rhs, t, y, theta, lam):
    """``(J^T lam, (df/dp)^T lam)`` at ``(t, y)`` with one reverse pass."""
    _, pull = jax.vjp(lambda yy, th: rhs(t, yy, th), y, theta)
    return pull(lam)


def vjp_state(rhs, t, y, theta, lam):
    """``J^T lam`` at ``(t, y)`` alone (no parameter cotangent is formed)."""
    _, pull = jax.vjp(lambda yy: rhs(t, yy, theta), y)
    return pull(lam)[0]
