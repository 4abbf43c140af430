"""ForwardDiffSensitivity: forward-mode AD through the solver."""

from __future__ import annotations

import jax

from .base import AbstractSensitivity, SensitivityOutput


class ForwardDiffSensitivity(AbstractSensitivity):
    """Forward-mode automatic differentiation through every step of the solve.

    Gives the exact derivative of the discrete solution (step sizes and orders held at
    the values the solve chose; implicit stages differentiated through the implicit
    function theorem). Cost grows with the number of parameters: one tangent per
    parameter. Prefer it for few parameters (SciMLSensitivity picks forward mode up to
    about 100 states + parameters); do not use it for large neural networks.
    """

    name = "ForwardDiffSensitivity"

    def compute(self, problem, solver, theta, settings):
        def loss_of(th):
            traj = settings.integrate(problem.rhs, solver, problem.y0, th, t0=problem.t0, stops=problem.stops)
            return problem.loss(traj.ys, th), traj

        grad, traj = jax.jacfwd(loss_of, has_aux=True)(theta)
        return SensitivityOutput(problem.loss(traj.ys, theta), grad, traj.status, traj.stats)
