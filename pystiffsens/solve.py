"""``pss.solve``: solve a problem with a native solver (or through the Julia backend)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from . import _validation, _xla, memory, problems, solvers
from . import device as _device
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
def _compiled_solve(rhs, solver, t0, max_steps, fixed, saved_steps=None):
    """Jitted solve recording ``saved_steps`` steps (None: ``max_steps``; 0: records nothing)."""
    record = saved_steps != 0

    def run(y0, params, stops, rtol, atol, dt):
        return integrate(
            rhs, solver, y0, params, t0=t0, stops=stops, rtol=rtol, atol=atol,
            dt=dt if fixed else None, max_steps=max_steps, record_states=record,
            max_saved_steps=saved_steps or None,
        )

    return _xla.jit(run)


def solve(
    problem: Problem | str,
    solver: str = "Rodas5P",
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 100_000,
    saveat=None,
    save_steps: bool = True,
    memory_limit=None,
    device: str = "cpu",
    backend: str = "jax",
) -> Solution:
    """Solve ``problem`` with ``solver``.

    Parameters
    ----------
    problem : a :class:`~pystiffsens.Problem` or the name of a built-in problem (``pss.problems.names()``).
    solver : one of ``pss.solvers.names()``.
    rtol, atol : tolerances of the adaptive step control (and of Newton iterations).
    dt : fixed step size (required by the fixed-step references); ``None`` for adaptive steps.
    max_steps : maximum number of step attempts; exceeding it gives status ``MaxIters``.
    saveat : times to save at (default: the problem's ``saveat``, i.e. ``[t1]``).
    save_steps : keep every accepted step in ``step_ts``/``step_ys`` (what
        ``pss.stiffness.stiffness_along_solution`` reads). The step buffer is sized to what
        the solve needs: it starts at :func:`pystiffsens.memory.first_saved_steps` entries and,
        when it fills, the solve is rerun with one :data:`pystiffsens.memory.GROWTH` times
        longer (at most ``max_steps``), so
        memory follows the steps taken, not ``max_steps``. ``False`` keeps no steps
        (``step_ts``/``step_ys`` are None) and allocates nothing per step.
    memory_limit : bytes or a size such as ``"8GB"`` for the step buffer (default:
        ``$PYSTIFFSENS_MEMORY_LIMIT``, else half the physical memory; :mod:`pystiffsens.memory`);
        a ``ValueError`` is raised before a buffer larger than that is allocated.
    device : ``"cpu"`` or ``"cuda"``.
    backend : ``"jax"`` (native) or ``"julia"`` (SciML through juliacall).

    Returns
    -------
    :class:`~pystiffsens.results.Solution`. A numerical failure is reported in ``status``
    (never raised); states past the failure are NaN.
    """
    backend = _validation.choose("backend", backend, BACKENDS)
    problem = problems.get(problem) if isinstance(problem, str) else problem
    if saveat is not None:
        problem = problem.replace(saveat=saveat)
    if backend == "julia":
        from . import julia_backend

        return julia_backend.solve(problem, solver, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps, device=device)
    solver_obj = check_options(problem, solver, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps)
    dev = _device.resolve(device)
    fixed = dt is not None
    args = (jnp.asarray(problem.y0), problem.params, jnp.asarray(problem.saveat), rtol, atol, 0.0 if dt is None else dt)
    lengths: Iterable[int] = (0,)  # records nothing
    if save_steps:
        shapes = _step_shapes(problem, solver_obj)
        t0, t1 = problem.tspan
        lengths = memory.saved_step_lengths(
            memory.first_saved_steps(max_steps, shapes.state, t_span=float(t1 - t0), dt=dt, n_stops=len(problem.saveat)),
            max_steps,
        )
    for saved in lengths:
        if saved:
            _check_step_buffer(shapes, saved, memory_limit, dev)
        run = _compiled_solve(problem.rhs, solver_obj, problem.tspan[0], max_steps, fixed, saved)
        with jax.default_device(dev):
            traj = run(*args)
        if not bool(traj.buffer_full):
            break
    n = int(traj.n_steps)
    step_ts = step_ys = None
    if saved:
        # Only the steps taken leave the device.
        states = jax.tree_util.tree_map(lambda buffer: buffer[: n + 1], traj.states)
        step_ts = np.asarray(traj.step_t[: n + 1])
        step_ys = np.asarray(jax.vmap(solver_obj.y_of)(states))
    return Solution(
        ts=np.asarray(problem.saveat),
        ys=np.asarray(traj.ys),
        status=ReturnCode(int(traj.status)),
        stats={name: int(traj.stats[name]) for name in STAT_NAMES},
        solver=solver_obj.name,
        backend="jax",
        device=device,
        step_ts=step_ts,
        step_ys=step_ys,
    )


def _step_shapes(problem, solver_obj):
    theta = {k: jnp.asarray(v) for k, v in problem.params.items()}
    return memory.shapes(problem.rhs, solver_obj, problem.y0, theta, len(problem.saveat), 0)


def _check_step_buffer(shapes, saved, memory_limit, device):
    """``ValueError`` before allocating a step buffer of ``saved`` solver states over the memory limit."""
    need = (saved + 1) * (shapes.state + 8)
    budget, source = memory.limit(memory_limit, device)
    if need > budget:
        raise ValueError(
            f"save_steps=True needs a step buffer of {memory.format_size(need)} ({saved} steps of "
            f"{shapes.n} states) for this solve, more than the memory limit of {memory.format_size(budget)} "
            f"({source}). Pass save_steps=False (the saved times still come back), a smaller max_steps=, or "
            f"raise the limit with memory_limit= or ${memory.ENV_VAR}."
        )
