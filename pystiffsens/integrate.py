"""The integration loop shared by every solver, sensitivity algorithm and backward solve.

``integrate`` advances any :class:`~pystiffsens.solvers.base.AbstractSolver` from ``t0``
to the last of ``stops`` inside one ``lax.while_loop`` (jit-, vmap- and forward-mode
differentiable). It steps exactly onto every stop (like SciML's ``tstops``) and saves the
state there, so saved states never involve interpolation. Step sizes, orders and
accept/reject decisions are computed from primal values only and never differentiated:
every derivative pystiffsens takes is the derivative of the discrete map with these
controls held fixed.

Optionally it records, per accepted step, the solver state at its start (what the
discrete adjoint replays) and the dense-output coefficients (what the interpolating and
Gauss adjoints query), in buffers of length ``max_steps``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .results import STAT_NAMES
from .returncode import ReturnCode
from .solvers.base import Tolerance, scaled_rms

RUNNING = -1
EPS = float(jnp.finfo(jnp.float64).eps)
FAIL_ERROR, FAIL_NEWTON, FAIL_NONFINITE = 0, 1, 2


class Trajectory(NamedTuple):
    """What ``integrate`` returns.

    Attributes
    ----------
    ys : (n_stops, n) states at the stops (NaN for stops not reached).
    status : ReturnCode value.
    stats : dict of counters (``n_steps``, ``n_rejected``, ``n_f``, ``n_jac``, ``n_lu``).
    n_steps : accepted steps.
    step_t : (max_steps + 1,) start times of the accepted steps; entries past ``n_steps``
        are ``+inf``.
    step_h : (max_steps,) accepted step sizes.
    step_stop : (max_steps,) index of the stop step ``i`` ended on, or -1.
    states : solver states at ``step_t`` (leading axis max_steps + 1), or None.
    dense : dense-output coefficients per accepted step (leading axis max_steps), or None.
    h0 : the step size the solver state was initialised with.
    """

    ys: Any
    status: Any
    stats: dict
    n_steps: Any
    step_t: Any
    step_h: Any
    step_stop: Any
    states: Any
    dense: Any
    h0: Any


def zero_counters() -> dict:
    """Cost counters (:data:`~pystiffsens.results.STAT_NAMES`) set to zero."""
    return {name: jnp.asarray(0, jnp.int32) for name in STAT_NAMES}


def initial_step(fn, t0, y0, args, t_span, order, rtol, atol):
    """Hairer, Nørsett & Wanner I, Sect. II.4 starting step (as scipy's ``select_initial_step``)."""
    scale = atol + jnp.abs(y0) * rtol
    f0 = fn(t0, y0, args)
    d0, d1 = scaled_rms(y0, scale), scaled_rms(f0, scale)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0))
    h0 = jnp.minimum(h0, t_span)
    f1 = fn(t0 + h0, y0 + h0 * f0, args)
    d2 = scaled_rms(f1 - f0, scale) / h0
    big = jnp.maximum(d1, d2)
    h1 = jnp.where(big <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / jnp.where(big > 0, big, 1.0)) ** (1.0 / (order + 1)))
    h = jnp.minimum(jnp.minimum(100 * h0, h1), t_span)
    return lax.stop_gradient(jnp.where(jnp.isfinite(h) & (h > 0), h, 1e-6 * t_span))


def _tree_where(cond, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(cond, x, y), a, b)


def _buffer(example, length):
    return jax.tree_util.tree_map(lambda x: jnp.zeros((length,) + jnp.shape(x), jnp.result_type(x)), example)


def _write(buffer, index, value):
    return jax.tree_util.tree_map(lambda b, v: b.at[index].set(v), buffer, value)


def integrate(
    fn,
    solver,
    y0,
    args,
    *,
    t0,
    stops,
    rtol,
    atol,
    dt=None,
    max_steps: int = 100_000,
    record_states: bool = False,
    record_dense: bool = False,
    error_mask=None,
) -> Trajectory:
    """Integrate ``y' = fn(t, y, args)`` from ``t0`` through every time in ``stops``.

    ``dt`` (a static None or a traced/float value) selects fixed steps; otherwise steps are
    adaptive with ``rtol``/``atol``. ``error_mask`` (0/1 per component) restricts the error
    norm, e.g. to the state part of an augmented system.
    """
    stops = jnp.asarray(stops, dtype=jnp.float64)
    t0 = jnp.asarray(t0, dtype=jnp.float64)
    n_stops = stops.shape[0]
    t_end = stops[-1]
    tol = Tolerance(jnp.asarray(rtol, jnp.float64), jnp.asarray(atol, jnp.float64))
    fixed = dt is not None
    counters = zero_counters()

    if fixed:
        h_init = jnp.minimum(jnp.asarray(dt, jnp.float64), t_end - t0)
    else:
        h_init = initial_step(fn, t0, y0, args, t_end - t0, solver.error_order + 1, tol.rtol, tol.atol)
        counters["n_f"] = counters["n_f"] + 2
    state0 = solver.init(fn, t0, y0, args, h_init)
    example = jax.eval_shape(lambda: solver.attempt(fn, t0, h_init, state0, args, tol))

    carry = dict(
        t=t0,
        h=h_init,
        state=state0,
        k=jnp.asarray(0),
        ys=jnp.full((n_stops, y0.shape[0]), jnp.nan, dtype=y0.dtype),
        status=jnp.asarray(RUNNING),
        stats=counters,
        attempts=jnp.asarray(0),
        step_t=jnp.full((max_steps + 1,), jnp.inf).at[0].set(t0),
        step_h=jnp.zeros((max_steps,)),
        step_stop=jnp.full((max_steps,), -1),
        states=_write(_buffer(state0, max_steps + 1), 0, state0) if record_states else None,
        dense=_buffer(example.dense, max_steps) if record_dense else None,
    )

    def cond(c):
        return c["status"] == RUNNING

    def body(c):
        t, h, state, k = c["t"], c["h"], c["state"], c["k"]
        stop_t = stops[k]
        remaining = stop_t - t
        land = h >= remaining * (1.0 - 1e-12)
        h_try = jnp.where(land, remaining, h)
        attempt = solver.attempt(fn, t, h_try, state, args, tol)
        y_old, y_new = solver.y_of(state), solver.y_of(attempt.state)
        scale = tol.atol + tol.rtol * jnp.maximum(jnp.abs(y_old), jnp.abs(y_new))
        err_norm = lax.stop_gradient(scaled_rms(attempt.error, scale, error_mask))
        finite = jnp.all(jnp.isfinite(y_new)) & jnp.isfinite(err_norm)
        # With fixed steps the error estimate only informs order selection (FBDF), never acceptance.
        ok = attempt.converged & finite & (fixed | (err_norm <= 1.0))

        accepted_state, h_accept = solver.accept(attempt.state, err_norm, h_try, tol)
        rejected_norm = jnp.where(attempt.converged & finite, err_norm, jnp.inf)
        h_reject = solver.reject(state, rejected_norm, h_try, tol)
        h_next = dt if fixed else lax.stop_gradient(jnp.where(ok, h_accept, h_reject))
        h_next = jnp.asarray(h_next, jnp.float64)
        t_new = jnp.where(land, stop_t, t + h_try)
        index = c["stats"]["n_steps"]

        stats = dict(c["stats"])
        stats["n_steps"] = stats["n_steps"] + ok
        stats["n_rejected"] = stats["n_rejected"] + ~ok
        stats["n_f"] = stats["n_f"] + attempt.n_f
        stats["n_jac"] = stats["n_jac"] + attempt.n_jac
        stats["n_lu"] = stats["n_lu"] + attempt.n_lu
        saved = ok & land

        new = dict(c)
        new["t"] = jnp.where(ok, t_new, t)
        new["h"] = h_next
        new["state"] = _tree_where(ok, accepted_state, state)
        new["k"] = k + saved
        new["ys"] = c["ys"].at[k].set(jnp.where(saved, y_new, c["ys"][k]))
        new["stats"] = stats
        new["attempts"] = c["attempts"] + 1
        new["step_t"] = c["step_t"].at[index + 1].set(jnp.where(ok, t_new, jnp.inf))
        new["step_h"] = c["step_h"].at[index].set(h_try)
        new["step_stop"] = c["step_stop"].at[index].set(jnp.where(land, k, -1))
        if record_states:
            new["states"] = _write(c["states"], index + 1, accepted_state)
        if record_dense:
            new["dense"] = _write(c["dense"], index, attempt.dense)

        reason = jnp.where(~finite, FAIL_NONFINITE, jnp.where(~attempt.converged, FAIL_NEWTON, FAIL_ERROR))
        failure_code = jnp.select(
            [reason == FAIL_NONFINITE, reason == FAIL_NEWTON],
            [ReturnCode.Unstable, ReturnCode.ConvergenceFailure],
            ReturnCode.DtLessThanMin,
        )
        if fixed:
            failed = ~ok
        else:
            h_min = 10 * EPS * jnp.maximum(jnp.abs(t), jnp.abs(t_end - t0) * 1e-6)
            failed = ~ok & (h_next < h_min)
        status = jnp.where(saved & (k == n_stops - 1), ReturnCode.Success, RUNNING)
        status = jnp.where(failed, failure_code, status)
        status = jnp.where((status == RUNNING) & (new["attempts"] >= max_steps), ReturnCode.MaxIters, status)
        new["status"] = status
        return new

    out = lax.while_loop(cond, body, carry)
    return Trajectory(
        ys=out["ys"],
        status=out["status"],
        stats=out["stats"],
        n_steps=out["stats"]["n_steps"],
        step_t=out["step_t"],
        step_h=out["step_h"],
        step_stop=out["step_stop"],
        states=out["states"],
        dense=out["dense"],
        h0=h_init,
    )


def dense_eval(solver, trajectory: Trajectory, t):
    """Evaluate the recorded dense output at time ``t`` (within the solved span)."""
    n = jnp.maximum(trajectory.n_steps, 1)
    i = jnp.clip(jnp.searchsorted(trajectory.step_t, t, side="right") - 1, 0, n - 1)
    t_start = trajectory.step_t[i]
    theta = (t - t_start) / trajectory.step_h[i]
    coeffs = jax.tree_util.tree_map(lambda b: b[i], trajectory.dense)
    return solver.interpolate(coeffs, theta)
