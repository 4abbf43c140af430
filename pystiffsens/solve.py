"""``pss.solve``: solve a problem with a native solver (or through the Julia backend)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import _validation, device as _device, solvers
from .integrate import integrate
from .problem import Problem
from .results import STAT_NAMES, Solution
from .returncode import ReturnCode

BACKENDS = ("jax", "julia")


def check_options(problem, solver, *, rtol, atol, dt, max_steps):
    """Validate the options shared by ``solve``, ``gradient`` and ``sweep``; return the solver."""
    if not isinstance(problem, Problem):
        raise ValueError(f"problem={problem!r} must be a pss.Problem (see pss.problems.get).")
    solver_obj = solvers.get(solver)
    _validation.check_tolerances(rtol, atol)
    _validation.check_dt(dt, problem.tspan)
    _validation.check_max_steps(max_steps)
    if dt is None and not solver_obj.adaptive:
        raise ValueError(
            f"solver={solver_obj.name!r} is a fixed-step reference method and needs dt= "
            f"(adaptive solvers: {[n for n in solvers.names() if solvers.get(n).adaptive]})."
        )
    return solver_obj


@functools.lru_cache(maxsize=64)
def _compiled_solve(rhs, solver, t0, max_steps, fixed):
    def run(y0, params, stops, rtol, atol, dt):
        return integrate(
            rhs, solver, y0, params, t0=t0, stops=stops, rtol=rtol, atol=atol,
            dt=dt if fixed else None, max_steps=max_steps, record_states=True,
        )

    return jax.jit(run)


def solve(
    problem: Problem,
    solver: str = "Rodas5P",
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 100_000,
    saveat=None,
    device: str = "cpu",
    backend: str = "jax",
) -> Solution:
    """Solve ``problem`` with ``solver``.

    Parameters
    ----------
    problem : a :class:`~pystiffsens.Problem`.
    solver : one of ``pss.solvers.names()``.
    rtol, atol : tolerances of the adaptive step control (and of Newton iterations).
    dt : fixed step size (required by the fixed-step references); ``None`` for adaptive steps.
    max_steps : maximum number of step attempts; exceeding it gives status ``MaxIters``.
    saveat : times to save at (default: the problem's ``saveat``, i.e. ``[t1]``).
    device : ``"cpu"`` or ``"cuda"``.
    backend : ``"jax"`` (native) or ``"julia"`` (SciML through juliacall).

    Returns
    -------
    :class:`~pystiffsens.results.Solution`. A numerical failure is reported in ``status``
    (never raised); states past the failure are NaN.
    """
    backend = _validation.choose("backend", backend, BACKENDS)
    if saveat is not None:
        problem = problem.replace(saveat=saveat)
    if backend == "julia":
        from . import julia_backend

        return julia_backend.solve(problem, solver, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps, device=device)
    solver_obj = check_options(problem, solver, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps)
    dev = _device.resolve(device)
    run = _compiled_solve(problem.rhs, solver_obj, problem.tspan[0], max_steps, dt is not None)
    with jax.default_device(dev):
        traj = run(
            jnp.asarray(problem.y0), problem.params, jnp.asarray(problem.saveat),
            rtol, atol, 0.0 if dt is None else dt,
        )
    n = int(traj.n_steps)
    # Only the steps taken leave the device (the buffers are max_steps long).
    states = jax.tree_util.tree_map(lambda buffer: buffer[: n + 1], traj.states)
    return Solution(
        ts=np.asarray(problem.saveat),
        ys=np.asarray(traj.ys),
        status=ReturnCode(int(traj.status)),
        stats={name: int(traj.stats[name]) for name in STAT_NAMES},
        solver=solver_obj.name,
        backend="jax",
        device=device,
        step_ts=np.asarray(traj.step_t[: n + 1]),
        step_ys=np.asarray(jax.vmap(solver_obj.y_of)(states)),
    )
