"""Steady states by simulation (as AMICI's fallback): preequilibration and steady-state measurements.

PEtab v1, measurement table, ``preequilibrationConditionId``: the model is first brought to a
steady state under that condition; the simulation condition then starts from it at ``t = 0``,
with its own parameters and its species overrides applied (NaN: keep the preequilibrated value).
A measurement at ``time`` ``inf`` is of the steady state of its simulation condition, reached from
the state at the condition's last finite measurement time (from ``t = 0`` when there is none), as
AMICI's postequilibration does.

The steady state is found as AMICI finds it by simulation: integrate from the condition's
initial state to a large time ``horizon`` (default :data:`HORIZON`) and accept the end state
``y`` when the right-hand side is small in AMICI's weighted RMS norm,

    sqrt(mean((f(y) / (atol + rtol |y|))^2)) <= 1,

with the solve's ``rtol`` and ``atol`` (AMICI's steady-state test, with its default tolerance
factor 1). A state that fails the test makes the likelihood NaN, with status ``Failure``.
The derivative is that of the simulation (through ``pss.solve`` with the chosen
sensitivity), which at a converged steady state
approximates the implicit-function-theorem derivative ``-J^-1 df/dp`` that AMICI's Newton
solver uses; no Newton solve is attempted, so models with conserved moieties (a singular ``J``)
need no special treatment.
"""

from __future__ import annotations

import jax.numpy as jnp

from .. import api
from ..returncode import ReturnCode

#: Default time the preequilibration condition is simulated for before the steady-state test.
HORIZON = 1e8


def steady_state_norm(rhs, t, y, p, rtol: float, atol: float):
    """AMICI's weighted RMS norm of ``rhs(t, y, p)``: at most 1 at an accepted steady state."""
    f = rhs(t, y, p)
    return jnp.sqrt(jnp.mean((f / (atol + rtol * jnp.abs(y))) ** 2))


def steady_state(template, p, y0, *, solver, sensitivity, rtol: float, atol: float, max_steps: int,
                 max_saved_steps: int | None = None, saveat=None):
    """``(y, status, steps)``: the end of ``template`` (a problem on ``[t0, t0 + horizon]`` saving its end) from
    ``y0``, if steady (the test at the end time), and the steps the solve accepted.

    Differentiable in ``p`` and ``y0``. When the solve fails, ``y`` is NaN and ``status`` the
    solve's; when its end fails the test, ``y`` is NaN and ``status`` is ``Failure``.
    The test is relative to ``y``: a state growing linearly, ``y = c t``, passes it once ``rtol t``
    exceeds about 1, as in AMICI (whose simulation stops at the first such time). A horizon below
    ``1 / rtol`` tells such a model from a settled one; the default :data:`HORIZON` suits rates
    down to about ``1e-6``. ``saveat``: the stops of the solve (None: the template's), ending at the horizon.
    """
    sol = api.solve(template, solver, sensitivity=sensitivity, params=p, y0=y0, saveat=saveat, rtol=rtol, atol=atol,
                    max_steps=max_steps, max_saved_steps=max_saved_steps)
    y = sol.ys[-1]
    converged = steady_state_norm(template.rhs, template.tspan[1], y, p, rtol, atol) <= 1.0
    status = jnp.where((sol.status == ReturnCode.Success) & ~converged, ReturnCode.Failure, sol.status)
    return jnp.where(converged, y, jnp.nan), status, sol.stats["n_steps"]
