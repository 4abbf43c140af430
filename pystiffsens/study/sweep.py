"""Stiffness sweeps: gradients for every solver and sensitivity over a stiffness grid, as a tidy frame."""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import _validation, _xla, problems
from ..device import DEVICES
from ..device import resolve as resolve_device
from ..problem import Problem
from ..results import flatten_params
from ..returncode import ReturnCode
from ..solve import BACKENDS, check_options
from . import resume
from .batch import BatchResult, Settings, compile_batch
from .names import resolve_sensitivities, resolve_solvers
from .schema import COUNTER_COLUMNS, FAR_FROM_EXACT, GRADIENT_COLUMNS, NOT_REPORTED

COMPILE_THREADS = 2
"""Batches compiled at once in background threads while the sweep runs finished ones."""


def sweep(
    problem,
    stiffness,
    solvers,
    sensitivities,
    *,
    backend: str = "jax",
    device: str = "cpu",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    adaptive: bool = True,
    max_steps: int = 100_000,
    progress: bool = True,
    out_dir=None,
    scheduler=None,
    chunk_size: int | None = None,
) -> pd.DataFrame:
    """Parameter gradients of ``problem`` for every solver and sensitivity over a stiffness grid.

    Parameters
    ----------
    problem : a :class:`~pystiffsens.Problem` or the name of a built-in problem.
    stiffness : the stiffness values (positive, distinct), set through ``problem.set_stiffness``.
    solvers, sensitivities : a name or a list of names (see ``pss.solvers.names()`` and
        ``pss.sensitivity.names()``; ``"forward"`` and ``"adjoint"`` are accepted aliases;
        ``backend="julia"`` also has ``QuadratureAdjoint`` and ``ZygoteAdjoint``).
    backend : ``"jax"`` or ``"julia"`` (which runs each batch as one Julia ensemble through
        ``pystiffsens.julia_backend.gradient_ensemble``); device : ``"cpu"`` or ``"cuda"``.
    rtol, atol : tolerances of adaptive solvers.
    dt : the step of the fixed-step solvers (ImplicitEuler, Trapezoid, BDF2). Adaptive solvers
        in the same sweep keep their adaptive steps (their rows have ``dt`` NaN) unless
        ``adaptive=False``; ``ValueError`` if ``dt`` is given and no solver would use it.
    adaptive : ``False`` (SciML's ``adaptive=false``) makes every solver, adaptive ones too,
        take fixed steps of ``dt``; rtol/atol then only set the Newton tolerance.
    max_steps : the step budget of each solve.
    progress : show a progress bar over the (solver, sensitivity) batches.
    out_dir : if given, it is checked (created if missing, must be writable) before anything
        runs; each batch's rows are merged into ``out_dir/gradients.csv`` as soon as the batch
        finishes, and rows already there for the same batch key and stiffness value are reused
        instead of recomputed. Rows of other sweeps in the file are kept, also when several
        sweeps write to it at once (see :mod:`pystiffsens.study.resume`).
    scheduler : run the batches on a Dask cluster: a ``distributed.Client`` or a scheduler
        address ``"tcp://HOST:PORT"`` (``pip install 'pystiffsens[dask]'``); same frame, same
        checkpoint, written by this process (see :mod:`pystiffsens.study.distributed`).
    chunk_size : with ``scheduler``, the stiffness values per task (default: one task per
        solver and sensitivity).

    Returns
    -------
    A tidy frame, one row per (solver, sensitivity, stiffness value, scalar parameter entry),
    columns :data:`~pystiffsens.study.schema.GRADIENT_COLUMNS`, ordered by solver, then
    sensitivity (as given), then stiffness (as given), then parameter entry. Rows whose
    gradient is far from the closed-form one (``far_from_exact``) are summarised in a
    ``RuntimeWarning``; their status stays the solver's.

    For the JAX backend each (solver, sensitivity) pair runs the whole grid as one vmapped
    computation compiled once; a failed stiffness value gets its status and NaN gradient
    without affecting the others. Up to :data:`COMPILE_THREADS` batches compile in
    background threads while finished ones run; rows are written in batch order.
    """
    problem = problems.get(problem) if isinstance(problem, str) else problem
    if not isinstance(problem, Problem):
        raise ValueError(f"problem={problem!r} must be a pss.Problem or one of {problems.names()}.")
    grid = check_stiffness(stiffness)
    backend = _validation.choose("backend", backend, BACKENDS)
    device = _validation.choose("device", device, DEVICES)
    pairs = list(itertools.product(resolve_solvers(solvers, backend), resolve_sensitivities(sensitivities, backend)))
    _validation.check_dt(dt, problem.tspan)
    steps = _step_sizes([solver for solver, _ in pairs], backend, dt, adaptive)
    _check_before_running(problem, pairs, backend, device, steps, rtol=rtol, atol=atol, max_steps=max_steps)
    settings = Settings(backend, device, float(rtol), float(atol), None, int(max_steps))
    checkpoint = resume.Checkpoint(resume.prepare_out_dir(out_dir)) if out_dir is not None else None
    base_key = {
        "problem": problem.label,
        "problem_id": resume.problem_id(problem),
        "backend": backend,
        "device": device,
        "rtol": settings.rtol,
        "atol": settings.atol,
        "max_steps": settings.max_steps,
    }
    exact = _exact_gradients(problem, grid)
    batches = []
    for solver, sensitivity in pairs:
        key = {**base_key, "dt": np.nan if steps[solver] is None else steps[solver], "solver": solver, "sensitivity": sensitivity}
        done = checkpoint.done(key, grid) if checkpoint is not None else resume.empty_frame()
        batches.append((key, done, resume.missing(done, grid), dataclasses.replace(settings, dt=steps[solver])))
    if scheduler is not None:
        from .distributed import run_batches

        frame = pd.concat(run_batches(scheduler, problem, grid, batches, exact, checkpoint, chunk_size=chunk_size,
                                      progress=progress), ignore_index=True)
        warn_far_from_exact(frame)
        return frame
    frames = []
    pool = ThreadPoolExecutor(COMPILE_THREADS, thread_name_prefix="pystiffsens-compile")
    try:
        compiling = [
            pool.submit(compile_batch, problem, grid[todo], key["solver"], key["sensitivity"], batch_settings)
            if todo.any() else None
            for key, _, todo, batch_settings in batches
        ]
        with tqdm(total=len(batches), desc=f"sweep {problem.label}", unit="batch", disable=not progress) as bar:
            for (key, done, todo, _), compiled in zip(batches, compiling):
                bar.set_postfix_str(f"{key['solver']} / {key['sensitivity']}")
                if compiled is not None:
                    batch = compiled.result()()
                    rows = batch_rows(key, grid[todo], batch, {name: values[todo] for name, values in exact.items()})
                    if checkpoint is not None:
                        checkpoint.append(rows)
                    done = pd.concat([done, rows], ignore_index=True) if len(done) else rows
                frames.append(_in_grid_order(done, grid))
                bar.update()
    finally:  # on an error or interrupt, compile nothing more than what is under way
        pool.shutdown(wait=False, cancel_futures=True)
    frame = pd.concat(frames, ignore_index=True)
    warn_far_from_exact(frame)
    return frame


def warn_far_from_exact(frame: pd.DataFrame) -> None:
    """A ``RuntimeWarning`` listing, per solver and sensitivity, the rows flagged ``far_from_exact``."""
    flagged = frame[frame["far_from_exact"].astype(bool)]
    if flagged.empty:
        return
    groups = flagged.groupby(["problem", "solver", "sensitivity"], sort=False)
    lines = [
        f"{problem} {solver}/{sensitivity}: {len(rows)} row(s), worst rel_error_exact "
        f"{rows['rel_error_exact'].max():.3g} (param {rows.loc[rows['rel_error_exact'].idxmax(), 'param']}, "
        f"stiffness {rows.loc[rows['rel_error_exact'].idxmax(), 'stiffness']:.3g})"
        for (problem, solver, sensitivity), rows in groups
    ]
    warnings.warn(
        f"{len(flagged)} of {len(frame)} gradient rows are far from the closed-form gradient "
        f"(rel_error_exact > {FAR_FROM_EXACT:g}, flagged in the column far_from_exact; the status is the solver's): "
        + "; ".join(lines),
        RuntimeWarning,
        stacklevel=3,
    )


def _step_sizes(solvers: list[str], backend: str, dt, adaptive: bool) -> dict[str, float | None]:
    """The fixed step of each solver, ``None`` for adaptive steps (see :func:`sweep`'s ``dt``, ``adaptive``)."""
    if not isinstance(adaptive, bool):
        raise ValueError(f"adaptive={adaptive!r} must be True or False.")
    fixed_only = _fixed_step_solvers(backend)
    if not adaptive and dt is None:
        raise ValueError("adaptive=False takes fixed steps of dt: give dt= as well (or drop adaptive=False).")
    if dt is not None and adaptive and not any(solver in fixed_only for solver in solvers):
        raise ValueError(
            f"dt={dt!r} applies to the fixed-step solvers ({', '.join(fixed_only)}) only, and none of {solvers} is one: "
            "drop dt for adaptive steps, or pass adaptive=False to make these solvers take fixed steps of dt."
        )
    return {
        solver: (None if dt is None else float(dt)) if (solver in fixed_only or not adaptive) else None
        for solver in solvers
    }


def _fixed_step_solvers(backend: str) -> list[str]:
    if backend == "julia":
        from ..julia_backend.names import FIXED_STEP_SOLVERS

        return list(FIXED_STEP_SOLVERS)
    from .. import solvers

    return [name for name in solvers.names() if not solvers.get(name).adaptive]


def _check_before_running(problem, pairs, backend, device, steps, **options) -> None:
    """Raise every option error (fixed-step solver without dt, absent GPU, ...) before any batch runs."""
    if backend == "julia":
        from ..julia_backend.names import check_method

        for solver, sensitivity in pairs:
            check_method(solver, sensitivity, steps[solver], device)
    for solver in dict.fromkeys(solver for solver, _ in pairs):
        check_options(problem, solver, dt=steps[solver], **options)
    if backend == "jax":
        resolve_device(device)


def check_stiffness(stiffness) -> np.ndarray:
    """The stiffness grid as a 1-D float64 array; ``ValueError`` unless positive, finite and distinct."""
    grid = np.atleast_1d(np.asarray(stiffness, dtype=np.float64))
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"stiffness={stiffness!r} must be a non-empty 1-D list of values.")
    if not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ValueError(f"stiffness={stiffness!r} must hold positive finite values.")
    if np.unique(grid).size != grid.size:
        raise ValueError(f"stiffness={stiffness!r} has repeated values; give each value once.")
    return grid


def batch_rows(key: dict, stiffness: np.ndarray, batch: BatchResult, exact: dict[str, np.ndarray]) -> pd.DataFrame:
    """The gradient-frame rows of one batch.

    ``exact`` maps flat parameter names to exact gradients at ``stiffness`` (empty when the
    problem has no closed form).
    """
    share = batch.run_time_s / len(stiffness)
    columns: dict[str, list] = {name: [] for name in GRADIENT_COLUMNS}
    for i, (value, result) in enumerate(zip(stiffness, batch.results)):
        for param, grad in result.flat_grad().items():
            for name, entry in key.items():
                columns[name].append(entry)
            columns["stiffness"].append(float(value))
            columns["param"].append(param)
            columns["grad"].append(grad)
            columns["abs_grad"].append(abs(grad))
            columns["exact_grad"].append(float(exact[param][i]) if param in exact else np.nan)
            columns["loss"].append(float(result.loss))
            columns["status"].append(ReturnCode.from_value(result.status).name)
            for name in COUNTER_COLUMNS:
                columns[name].append(int(result.stats.get(name, NOT_REPORTED)))
            columns["wall_time_s"].append(share)
            columns["compile_time_s"].append(float(batch.compile_time_s))
            columns["rel_error_exact"].append(np.nan)
            columns["far_from_exact"].append(False)
    rows = pd.DataFrame(columns)
    rows["rel_error_exact"] = resume.rel_error_exact(rows)
    rows["far_from_exact"] = resume.far_from_exact(rows["rel_error_exact"].to_numpy())
    return rows


def _exact_gradients(problem: Problem, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Flat parameter name -> closed-form gradient at every stiffness value ({} without a closed form)."""
    exact = _xla.jit(jax.vmap(lambda s: problem.exact_loss_and_grad(problem.set_stiffness(problem.params, s))))
    out = exact(jnp.asarray(grid))
    if out is None:
        return {}
    _, grad = jax.device_get(out)
    # Flattened like the solver gradients: array entries become "name[i]".
    flat = [flatten_params({name: value[i] for name, value in grad.items()}) for i in range(grid.size)]
    return {name: np.array([entry[name] for entry in flat]) for name in flat[0]}


def _in_grid_order(rows: pd.DataFrame, grid: np.ndarray) -> pd.DataFrame:
    """``rows`` sorted by the position of their stiffness in ``grid``, parameter order kept."""
    position = resume.positions(rows["stiffness"].to_numpy(), grid)
    return rows.iloc[np.argsort(position, kind="stable")].reset_index(drop=True)
