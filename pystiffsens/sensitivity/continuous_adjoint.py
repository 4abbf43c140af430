"""Machinery shared by the continuous adjoints: backward solves between saved times.

The adjoint ``lambda`` of ``L(y(t_1), ..., y(t_K))`` obeys ``lambda' = -J^T lambda``
backward in time, jumps by ``dL/dy(t_k)`` at every saved time, and the parameter
gradient is ``dL/dp + int_{t0}^{T} lambda^T df/dp dt`` (Cao, Li, Petzold & Serban, SIAM
J. Sci. Comput. 24 (2003)). Backward solves use the same solver on the time-reversed
system ``z'(s) = -F(t_hi - s, z)``, segment by segment between saved times (a ``lax.scan`` over
segments), so multistep methods restart cleanly after each jump. Each segment's ``s`` starts at
0 at its upper end ``t_hi``, where the jump starts a layer of ``lambda``: in ``t`` itself a step
there can be no shorter than a few ulps of ``t_hi`` (the step-size floor is ``10 eps |t|``),
which at the end of a preequilibration to ``t = 1e8`` is 2.2e-7, longer than FBDF's first
steps into Zheng_PNAS2012's adjoint layer at rtol 1e-8 (the backward solve stopped with
``DtLessThanMin``).

The parameter integral ``mu`` is a quadrature (CVODES's quadrature variables): the
backward right-hand side is a :class:`~pystiffsens.solvers.partitioned.QuadratureRHS`
whose implicit part is ``lambda`` (or ``(y, lambda)``), so every solver factorises and
iterates on that part only and advances ``mu`` with its stage values. By default ``mu``
is left out of the error test (CVODES's ``errconQ`` defaults to false).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ..integrate import Trajectory, initial_step, integrate, integrate_from, zero_counters
from ..lanes import while_any
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
    """``z'(s) = -rhs(t_ref - s, z, args)``, taking ``(args, t_ref)`` as its args: integrating in ``s`` from 0
    to ``t_ref - t_lo`` runs ``t`` backward from ``t_ref`` to ``t_lo``."""
    if isinstance(rhs, QuadratureRHS):
        return rhs.time_reversed()
    if isinstance(rhs, SparseRHS):
        return SparseRHS(reversed_rhs(rhs.fn), rhs.jac_sparsity)
    return lambda s, z, args: -rhs(args[1] - s, z, args[0])


def backward_segments(
    problem, solver, theta, options, adjoint_rhs, z_final, jump, *, per_segment=None, extra0=None,
    accumulate=None, window=None, h_init=None,
):
    """Integrate ``adjoint_rhs`` backward across every segment, with the forward solve's ``options``.

    Parameters
    ----------
    adjoint_rhs : ``(t, z, theta) -> dz/dt`` in forward time, or a
        :class:`~pystiffsens.solvers.partitioned.QuadratureRHS` (its error mask is applied).
    z_final : state at the final time, or at the window's upper end (the jump there already applied).
    jump : ``(z, k) -> z`` applied on reaching saved time ``k`` (not at ``t0``).
    per_segment : optional ``(trajectory, z_end, extra) -> extra`` run after each segment's
        solve (a consistency check, or collecting ``trajectory.accumulated``), starting from ``extra0``.
    accumulate : optional ``(fn, init)``: ``(fn(step, accepted, t_hi), init)`` is passed to each segment's
        :func:`~pystiffsens.integrate.integrate`, a sum over its backward steps in
        ``trajectory.accumulated`` (``step["t"]`` is the step's start in the segment's ``s = t_hi - t``).
    window : optional ``(lo, hi)``: integrate from ``hi`` down to ``lo`` only, every segment
        clipped to it (those outside it become empty), and jump at the saved times in ``[lo, hi)``.
        Without it, from the final time to ``t0``.
    h_init : the first segment's first step size; where None or not positive, estimated as for any solve.

    Each segment starts with the step size the one before it would have taken next, so a
    backward solve across many saved times is not restarted from a first-step estimate at
    each (that took about two steps per interval where one did: benchmarks/README.md,
    section 8); a multistep method does restart its history there.

    Returns ``(z at t0 or lo, status, summed stats, extra, the next step size)``.
    """
    upper, lower, lower_index = segment_bounds(problem)
    jumps = lower_index >= 0
    if window is not None:
        lo, hi = window
        jumps = jumps & (lower >= lo) & (lower < hi)
        upper, lower = jnp.clip(upper, lo, hi), jnp.clip(lower, lo, hi)
    backward = reversed_rhs(adjoint_rhs)
    error_mask = backward.error_mask(z_final.shape[0]) if isinstance(backward, QuadratureRHS) else None

    stats0 = zero_counters()
    if options.dt is not None:  # fixed steps take dt
        h_init = jnp.zeros(())
    else:
        estimate = initial_step(backward, jnp.zeros(()), z_final, (theta, upper[0]), upper[0] - lower[0],
                                solver.error_order + 1, options.rtol, options.atol)
        given = jnp.asarray(False) if h_init is None else h_init > 0
        h_init = estimate if h_init is None else jnp.where(given, h_init, estimate)
        stats0["n_f"] = stats0["n_f"] + jnp.where(given, 0, 2).astype(stats0["n_f"].dtype)

    def segment(carry, xs):
        z, status, stats, extra, h = carry
        t_hi, t_lo, k, jumped = xs
        summed = None if accumulate is None else (functools.partial(accumulate[0], t_hi=t_hi), accumulate[1])
        traj: Trajectory = integrate(
            backward, solver, z, (theta, t_hi), t0=jnp.zeros(()), stops=(t_hi - t_lo)[None], options=options,
            error_mask=error_mask, accumulate=summed, h_init=h,
        )
        z_end = traj.ys[0]
        if per_segment is not None:
            extra = per_segment(traj, z_end, extra)
        z_next = jnp.where(jumped, jump(z_end, jnp.maximum(k, 0)), z_end)
        stats = {name: stats[name] + traj.stats[name] for name in stats}
        h = jnp.where(t_hi > t_lo, traj.h_next, h)  # an empty segment takes no step
        return (z_next, combine_status(status, traj.status), stats, extra, h), None

    extra0 = jnp.zeros(()) if extra0 is None else extra0
    (z, status, stats, extra, h), _ = lax.scan(
        segment, (z_final, jnp.asarray(0), stats0, extra0, jnp.asarray(h_init, jnp.float64)),
        (upper, lower, lower_index, jumps),
    )
    return z, status, stats, extra, h


def along_forward(problem, solver, theta, options, forward, backward_on, z_final, jump, *, per_segment=None,
                  extra0=None):
    """:func:`backward_segments` with a backward system that reads the forward solve's dense output.

    ``backward_on(records) -> (adjoint_rhs, accumulate)`` builds the backward system on recorded
    steps (anything :func:`~pystiffsens.integrate.dense_eval` reads). A forward solve that recorded
    every step (``forward.dense``) gives all of them at once. One that kept checkpoints instead
    (``integrate(checkpoints=C)``) gives them a segment of ``L = forward.checkpoint_every`` steps at
    a time, latest first: each is recomputed from its checkpoint
    (:func:`~pystiffsens.integrate.integrate_from`) and the backward solve runs across it, stepping
    onto its lower end and going on from there with its step size, as SciMLSensitivity's
    ``InterpolatingAdjoint(checkpointing=true)`` makes the checkpoints ``tstops`` of its backward
    solve. Memory is then ``C`` checkpoints and ``L`` steps of dense output, for one more forward
    solve; the gradient agrees with the one from every step to the tolerances.
    """
    if forward.checkpoints is None:
        adjoint_rhs, accumulate = backward_on(forward)
        return backward_segments(problem, solver, theta, options, adjoint_rhs, z_final, jump,
                                 per_segment=per_segment, extra0=extra0, accumulate=accumulate)[:4]
    every, n_total = forward.checkpoint_every, forward.n_steps
    extra0 = jnp.zeros(()) if extra0 is None else extra0

    def segment(carry):
        j, z, status, stats, extra, h = carry
        checkpoint = jax.tree_util.tree_map(lambda b: b[j], forward.checkpoints)
        steps = integrate_from(
            checkpoint, problem.rhs, solver, theta, t0=problem.t0, stops=problem.stops, options=options,
            until=jnp.minimum((j + 1) * every, n_total), length=every, record_states=False, record_dense=True,
        )
        adjoint_rhs, accumulate = backward_on(steps)
        window = (checkpoint["t"], steps.step_t[steps.n_steps])
        z, seg_status, seg_stats, extra, h = backward_segments(
            problem, solver, theta, options, adjoint_rhs, z, jump, per_segment=per_segment, extra0=extra,
            accumulate=accumulate, window=window, h_init=h,
        )
        stats = {name: stats[name] + seg_stats[name] for name in stats}
        return j - 1, z, combine_status(status, seg_status), stats, extra, h

    last = jnp.where(n_total > 0, (jnp.maximum(n_total, 1) - 1) // every, -1)
    start = (last, z_final, jnp.asarray(0), zero_counters(), extra0, jnp.asarray(0.0))  # h 0: estimate it
    _, z, status, stats, extra, _ = while_any(lambda c: c[0] >= 0, segment, start)
    return z, status, stats, extra


def vjp_rhs(rhs, t, y, theta, lam):
    """``(J^T lam, (df/dp)^T lam)`` at ``(t, y)`` with one reverse pass."""
    _, pull = jax.vjp(lambda yy, th: rhs(t, yy, th), y, theta)
    return pull(lam)


def vjp_state(rhs, t, y, theta, lam):
    """``J^T lam`` at ``(t, y)`` alone (no parameter cotangent is formed)."""
    _, pull = jax.vjp(lambda yy: rhs(t, yy, theta), y)
    return pull(lam)[0]
