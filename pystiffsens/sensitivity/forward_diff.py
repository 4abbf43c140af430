"""ForwardDiffSensitivity: forward-mode AD through the solver."""

from __future__ import annotations

import jax

from ..integrate import integrate
from ..solvers.partitioned import iteration_matrix_tangents
from .base import STEP_VECTORS, WORD, ForwardModeSensitivity, ForwardPass, saved_ys_bytes, with_entries

#: Every working array of a forward-mode step carries the tangents, and the tangent of the Jacobian is itself a
#: Jacobian: about this many ``n x n`` matrices per tangent (fitted to XLA's plans, as the step constants).
FORWARD_MODE_MATRICES = 20


class ForwardDiffSensitivity(ForwardModeSensitivity):
    """Forward-mode automatic differentiation through every step of the solve.

    Gives the exact derivative of the discrete solution (step sizes and orders held at
    the values the solve chose; implicit stages differentiated through the implicit
    function theorem). Cost grows with the number of parameters: one tangent per
    parameter. Prefer it for few parameters (SciMLSensitivity picks forward mode up to
    about 100 states + parameters); do not use it for large neural networks.
    """

    name = "ForwardDiffSensitivity"
    aliases = ("forward",)

    def forward(self, problem, solver, theta, y0, options, *, saved_steps, wrt_y0=False, wrt_theta=None,
                record_states=False):
        def ys_of(u, y):
            th = u if wrt_theta is None else with_entries(theta, wrt_theta, u)
            traj = integrate(problem.rhs, solver, y, th, t0=problem.t0, stops=problem.stops, options=options,
                             saved_steps=saved_steps, record_states=record_states)
            return traj.ys, traj

        u = theta if wrt_theta is None else theta[wrt_theta]
        with iteration_matrix_tangents("products"):  # the cheaper rule in forward mode
            if wrt_y0:
                (S_theta, S_y0), traj = jax.jacfwd(ys_of, argnums=(0, 1), has_aux=True)(u, y0)
            else:
                S_theta, traj = jax.jacfwd(ys_of, has_aux=True)(u, y0)
                S_y0 = None
        return ForwardPass(traj.ys, traj.status, traj.stats, traj.buffer_full, (S_theta, S_y0), traj)

    def memory(self, s):
        return {"tangents": (1 + s.P) * WORD * (FORWARD_MODE_MATRICES * s.n * s.n + STEP_VECTORS * s.n)
                + saved_ys_bytes(s) * (1 + s.P)}
