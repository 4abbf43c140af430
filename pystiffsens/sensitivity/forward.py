"""ForwardSensitivity: the forward sensitivity equations integrated alongside the state."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..integrate import integrate
from .base import ForwardModeSensitivity, ForwardPass, saved_ys_bytes, step_bytes, with_entries


class ForwardSensitivity(ForwardModeSensitivity):
    """Continuous forward sensitivities ``S' = J S + df/dp``, ``S(t0) = 0``.

    The state and the ``n x P`` sensitivity matrix are integrated together as one
    augmented system by the chosen solver (so with the same method, and for implicit
    methods the Jacobian of the augmented system). Cotangents on the saved states are
    contracted with ``S(t_k)``. It converges to the exact derivative of the ODE as the
    tolerances tighten (not to the derivative of the discrete solution). Sensitivities to
    ``y0``, when asked for, are ``n`` more columns starting from the identity.

    Parameters
    ----------
    error_control_sensitivities : include the sensitivities in the step-size error norm
        (SciML's ``ForwardSensitivity`` controls the state only by default, as here).
    """

    name = "ForwardSensitivity"

    def __init__(self, error_control_sensitivities: bool = False):
        self.error_control_sensitivities = bool(error_control_sensitivities)

    def forward(self, problem, solver, theta, y0, options, *, saved_steps, wrt_y0=False, wrt_theta=None,
                record_states=False):
        n, P = y0.shape[0], theta.shape[0] if wrt_theta is None else len(wrt_theta)
        m = P + (n if wrt_y0 else 0)

        def augmented(t, z, th):
            y, S = z[:n], z[n:].reshape(n, m)
            f, tangent_map = jax.linearize(lambda yy: problem.rhs(t, yy, th), y)
            JS = jax.vmap(tangent_map, in_axes=1, out_axes=1)(S)
            if wrt_theta is None:
                f_p = jax.jacfwd(problem.rhs, argnums=2)(t, y, th)
            else:
                f_p = jax.jacfwd(lambda u: problem.rhs(t, y, with_entries(th, wrt_theta, u)))(th[wrt_theta])
            source = jnp.concatenate([f_p, jnp.zeros((n, n), f_p.dtype)], axis=1) if wrt_y0 else f_p
            return jnp.concatenate([f, (JS + source).ravel()])

        S0 = jnp.zeros((n, P), dtype=y0.dtype)
        if wrt_y0:
            S0 = jnp.concatenate([S0, jnp.eye(n, dtype=y0.dtype)], axis=1)
        z0 = jnp.concatenate([y0, S0.ravel()])
        mask = None if self.error_control_sensitivities else jnp.concatenate([jnp.ones(n), jnp.zeros(n * m)])
        traj = integrate(augmented, solver, z0, theta, t0=problem.t0, stops=problem.stops, options=options,
                         saved_steps=saved_steps, record_states=record_states, error_mask=mask)
        S = traj.ys[:, n:].reshape(-1, n, m)
        residual = (S[:, :, :P], S[:, :, P:] if wrt_y0 else None)
        return ForwardPass(traj.ys[:, :n], traj.status, traj.stats, traj.buffer_full, residual, traj)

    def memory(self, s):
        return {"augmented step": step_bytes(s.n * (1 + s.P)) + saved_ys_bytes(s) * (1 + s.P)}
