"""ReverseDiffAdjoint: the discrete adjoint, reverse-mode AD through the solver, with per-step or bounded checkpoints."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..integrate import branch_if_records_large, checkpoint_interval, integrate, integrate_from
from ..lanes import while_any
from .base import (
    STEP_VECTORS,
    WORD,
    AbstractSensitivity,
    BackwardPass,
    ForwardPass,
    checkpoints_bytes,
    checkpoints_option,
    records_bytes,
    saved_ys_bytes,
    step_bytes,
)


def _split(solver, state):
    """(differentiable fields, control fields) of a solver state."""
    diff = {f: getattr(state, f) for f in state._fields if f not in solver.control_fields}
    controls = {f: getattr(state, f) for f in solver.control_fields}
    return diff, controls


def _join(state_type, diff, controls):
    return state_type(**diff, **controls)


class ReverseDiffAdjoint(AbstractSensitivity):
    """Reverse-mode automatic differentiation through the solver (the discrete adjoint).

    The backward pass replays each accepted step from the solver state at its start and
    pulls the adjoint back through it with ``jax.vjp``, with the step sizes and orders of
    the forward solve. Stage values are recomputed, never stored. Same discrete map as
    :class:`ForwardDiffSensitivity`, so both agree to rounding; cost independent of the
    number of parameters.

    Parameters
    ----------
    checkpoints : ``None`` (default) records the solver state at every accepted step:
        memory ``max_saved_steps`` solver states, no recomputation. An integer ``C``
        bounds the memory instead, as diffrax's ``RecursiveCheckpointAdjoint(checkpoints=C)``
        does: the forward solve keeps ``C`` snapshots, one every
        ``L = ceil(max_saved_steps / C)`` accepted steps, and the backward pass recomputes
        one segment of ``L`` steps at a time from its snapshot (Griewank & Walther,
        *Evaluating Derivatives*, 2nd ed., Sect. 12: two-level checkpointing). Memory is
        about ``C + L`` solver states, smallest near ``C = sqrt(max_saved_steps)``; the price is
        one more forward solve. The gradient is the same (to rounding).
    """

    name = "ReverseDiffAdjoint"
    records = "states"

    def __init__(self, checkpoints: int | None = None):
        self.checkpoints = checkpoints_option(checkpoints)

    def forward(self, problem, solver, theta, y0, options, *, saved_steps, wrt_y0=False, record_states=False):
        per_step = self.checkpoints is None
        traj = integrate(problem.rhs, solver, y0, theta, t0=problem.t0, stops=problem.stops, options=options,
                         saved_steps=saved_steps, record_states=per_step or record_states,
                         checkpoints=None if per_step else self.checkpoints)
        return ForwardPass(traj.ys, traj.status, traj.stats, traj.buffer_full, traj, traj)

    def backward(self, problem, solver, theta, y0, options, fwd, g_ys, *, saved_steps):
        traj = fwd.residual
        state0 = solver.init(problem.rhs, problem.t0, y0, theta, traj.h0)
        state_type = type(state0)

        def step_map(diff, th, controls, t, h):
            state = _join(state_type, diff, controls)
            new = solver.attempt(problem.rhs, t, h, state, th, options).state
            return _split(solver, new)[0]

        def y_cotangent(state, g):
            diff, controls = _split(solver, state)
            _, pull = jax.vjp(lambda d: solver.y_of(_join(state_type, d, controls)), diff)
            return pull(g)[0]

        def pull_back(steps, n_steps, lam, g_th):
            """Adjoint through accepted steps ``n_steps - 1, ..., 0`` of ``steps`` (a Trajectory or Segment)."""
            state_at = lambda i: jax.tree_util.tree_map(lambda b: b[i], steps.states)

            def update(carry, row):
                i, lam, g_th = carry
                stop = row["stop"]
                injected = y_cotangent(row["end"], row["g_y"])
                lam = jax.tree_util.tree_map(lambda a, b: a + jnp.where(stop >= 0, b, 0.0), lam, injected)
                diff, controls = _split(solver, row["start"])
                _, pull = jax.vjp(lambda d, th: step_map(d, th, controls, row["t"], row["h"]), diff, theta)
                lam_before, g_step = pull(lam)
                return i - 1, lam_before, g_th + g_step

            def body(carry):
                i = carry[0]
                stop = steps.step_stop[i]
                row = dict(start=state_at(i), end=state_at(i + 1), t=steps.step_t[i], h=steps.step_h[i], stop=stop,
                           g_y=g_ys[jnp.maximum(stop, 0)])
                return branch_if_records_large(update, carry, row, steps.states, i >= 0)

            _, lam, g_th = while_any(lambda c: c[0] >= 0, body, (n_steps - 1, lam, g_th))
            return lam, g_th

        lam0 = jax.tree_util.tree_map(jnp.zeros_like, _split(solver, state0)[0])
        g0 = jnp.zeros_like(theta)
        if self.checkpoints is None:
            lam, g_steps = pull_back(traj, traj.n_steps, lam0, g0)
        else:
            every = traj.checkpoint_every
            n_total = traj.n_steps

            def segment(carry):
                j, lam, g_th = carry
                checkpoint = jax.tree_util.tree_map(lambda b: b[j], traj.checkpoints)
                steps = integrate_from(
                    checkpoint, problem.rhs, solver, theta, t0=problem.t0, stops=problem.stops, options=options,
                    until=jnp.minimum((j + 1) * every, n_total), length=every,
                )
                lam, g_th = pull_back(steps, steps.n_steps, lam, g_th)
                return j - 1, lam, g_th

            last = (jnp.maximum(n_total, 1) - 1) // every
            _, lam, g_steps = while_any(lambda c: c[0] >= 0, segment, (jnp.where(n_total > 0, last, -1), lam0, g0))
        # The initial state depends on y0, and may depend on the parameters (BDF's scaled first difference).
        _, pull_init = jax.vjp(
            lambda th, y: _split(solver, solver.init(problem.rhs, problem.t0, y, th, traj.h0))[0], theta, y0
        )
        g_init, g_y0 = pull_init(lam)
        # A stop at t0 saves y0 itself.
        g_y0 = g_y0 + jnp.where(problem.stops[0] <= problem.t0, g_ys[0], 0.0)
        return BackwardPass(g_steps + g_init, g_y0)

    def memory(self, s):
        work = {"steps": 2 * step_bytes(s.n) + WORD * s.P * STEP_VECTORS // 4 + saved_ys_bytes(s)}
        if self.checkpoints is None:
            return work | {"step records": records_bytes(s.state, s.saved_steps + 1)}
        every = checkpoint_interval(s.saved_steps, self.checkpoints)
        return work | {"checkpoints": checkpoints_bytes(self.checkpoints, s.state),
                       "segment": records_bytes(s.state, every + 1)}
