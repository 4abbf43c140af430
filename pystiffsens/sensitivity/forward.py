"""ForwardSensitivity: the forward sensitivity equations integrated alongside the state."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import AbstractSensitivity, SensitivityOutput, loss_gradients


class ForwardSensitivity(AbstractSensitivity):
    """Continuous forward sensitivities ``S' = J S + df/dp``, ``S(t0) = 0``.

    The state and the ``n x P`` sensitivity matrix are integrated together as one
    augmented system by the chosen solver (so with the same method, and for implicit
    methods the Jacobian of the augmented system). The gradient is
    ``sum_k dL/dy(t_k) S(t_k) + dL/dp``. It converges to the exact gradient of the ODE as
    the tolerances tighten (not to the derivative of the discrete solution).

    Parameters
    ----------
    error_control_sensitivities : include the sensitivities in the step-size error norm
        (SciML's ``ForwardSensitivity`` controls the state only by default, as here).
    """

    name = "ForwardSensitivity"

    def __init__(self, error_control_sensitivities: bool = False):
        self.error_control_sensitivities = bool(error_control_sensitivities)

    def compute(self, problem, solver, theta, settings):
        n, P = problem.y0.shape[0], theta.shape[0]

        def augmented(t, z, th):
            y, S = z[:n], z[n:].reshape(n, P)
            f, tangent_map = jax.linearize(lambda yy: problem.rhs(t, yy, th), y)
            JS = jax.vmap(tangent_map, in_axes=1, out_axes=1)(S)
            f_p = jax.jacfwd(problem.rhs, argnums=2)(t, y, th)
            return jnp.concatenate([f, (JS + f_p).ravel()])

        z0 = jnp.concatenate([problem.y0, jnp.zeros(n * P, dtype=problem.y0.dtype)])
        mask = None if self.error_control_sensitivities else jnp.concatenate([jnp.ones(n), jnp.zeros(n * P)])
        traj = settings.integrate(augmented, solver, z0, theta, t0=problem.t0, stops=problem.stops, error_mask=mask)
        ys = traj.ys[:, :n]
        S = traj.ys[:, n:].reshape(-1, n, P)
        loss, g_ys, g_theta = loss_gradients(problem, ys, theta)
        grad = g_theta + jnp.einsum("kn,knp->p", g_ys, S)
        return SensitivityOutput(loss, grad, traj.status, traj.stats)
