"""ReverseDiffAdjoint: the discrete adjoint, reverse-mode AD through the solver with per-step checkpoints."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ..solvers.base import Tolerance
from .base import AbstractSensitivity, SensitivityOutput, loss_gradients


def _split(solver, state):
    """(differentiable fields, control fields) of a solver state."""
    diff = {f: getattr(state, f) for f in state._fields if f not in solver.control_fields}
    controls = {f: getattr(state, f) for f in solver.control_fields}
    return diff, controls


def _join(state_type, diff, controls):
    return state_type(**diff, **controls)


class ReverseDiffAdjoint(AbstractSensitivity):
    """Reverse-mode automatic differentiation through the solver (the discrete adjoint).

    The forward solve records the solver state at the start of every accepted step (a
    checkpoint per step); the backward pass replays each step from its checkpoint and
    pulls the adjoint back through it with ``jax.vjp``, with the step sizes and orders of
    the forward solve. Stage values are recomputed, never stored, so memory grows with
    the number of steps times the state size only. Same discrete map as
    :class:`ForwardDiffSensitivity`, so both agree to rounding; cost independent of the
    number of parameters.
    """

    name = "ReverseDiffAdjoint"

    def compute(self, problem, solver, theta, settings):
        traj = settings.integrate(
            problem.rhs, solver, problem.y0, theta, t0=problem.t0, stops=problem.stops, record_states=True
        )
        loss, g_ys, g_theta = loss_gradients(problem, traj.ys, theta)
        tol = Tolerance(jnp.asarray(settings.rtol, jnp.float64), jnp.asarray(settings.atol, jnp.float64))
        state_at = lambda i: jax.tree_util.tree_map(lambda b: b[i], traj.states)
        state_type = type(state_at(0))

        def step_map(diff, th, controls, t, h):
            state = _join(state_type, diff, controls)
            new = solver.attempt(problem.rhs, t, h, state, th, tol).state
            return _split(solver, new)[0]

        def y_cotangent(state, g):
            diff, controls = _split(solver, state)
            _, pull = jax.vjp(lambda d: solver.y_of(_join(state_type, d, controls)), diff)
            return pull(g)[0]

        def body(carry):
            i, lam, g_th = carry
            after = state_at(i + 1)
            stop = traj.step_stop[i]
            injected = y_cotangent(after, g_ys[jnp.maximum(stop, 0)])
            lam = jax.tree_util.tree_map(lambda a, b: a + jnp.where(stop >= 0, b, 0.0), lam, injected)
            before = state_at(i)
            diff, controls = _split(solver, before)
            _, pull = jax.vjp(lambda d, th: step_map(d, th, controls, traj.step_t[i], traj.step_h[i]), diff, theta)
            lam_before, g_step = pull(lam)
            return i - 1, lam_before, g_th + g_step

        lam0 = jax.tree_util.tree_map(jnp.zeros_like, _split(solver, state_at(0))[0])
        _, lam, g_steps = lax.while_loop(lambda c: c[0] >= 0, body, (traj.n_steps - 1, lam0, jnp.zeros_like(theta)))
        # The initial state may depend on the parameters (e.g. BDF's scaled first difference).
        _, pull_init = jax.vjp(
            lambda th: _split(solver, solver.init(problem.rhs, problem.t0, problem.y0, th, traj.h0))[0], theta
        )
        g_init = pull_init(lam)[0]
        return SensitivityOutput(loss, g_theta + g_steps + g_init, traj.status, traj.stats)
