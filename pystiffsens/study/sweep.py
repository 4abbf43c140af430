"""Stiffness sweeps: gradients for every solver and sensitivity over a stiffness grid, as a tidy frame."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import _validation, _warnings, _x64, backends
from ..api import resolve_problem
from ..options import Options
from . import resume
from .batch import Batch
from .distributed import run_batches
from .rows import batch_rows, exact_gradients, in_grid_order
from .schema import FAR_FROM_EXACT

COMPILE_THREADS = 2
"""Batches compiled at once, in threads; they run when all of them have compiled (see :func:`sweep`)."""


@_x64.float64
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
        ``pystiffsens.backends.julia``); device : ``"cpu"`` or ``"cuda"``.
    rtol, atol : tolerances of adaptive solvers.
    dt : the step of the fixed-step solvers (``pss.solvers.fixed_step_names()``). Adaptive solvers
        in the same sweep keep their adaptive steps (their rows have ``dt`` NaN) unless
        ``adaptive=False``; ``ValueError`` if ``dt`` is given and no solver would use it.
    adaptive : ``False`` (SciML's ``adaptive=false``) makes every solver, adaptive ones too,
        take fixed steps of ``dt``; rtol/atol then only set the Newton tolerance.
    max_steps : the step budget of each solve.
    progress : show a progress bar over the (solver, sensitivity) batches.
    out_dir : if given, it is checked (created if missing, must be writable) before anything
        runs; each batch's rows are merged into ``out_dir/gradients.csv`` as soon as the batch
        finishes, and rows already there for the same batch key and stiffness value are reused
        instead of recomputed. The key includes ``problem_id``, a fingerprint of what the
        problem computes (:func:`~pystiffsens.study.resume.problem_id`): rows of an edited
        model are not reused, and a ``RuntimeWarning`` says when values are computed again
        for that reason; a stored row whose parameter entry the problem lacks is refused with
        the file and line. Rows of other sweeps in the file are kept, also when several
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
    without affecting the others. The batches compile :data:`COMPILE_THREADS` at a time,
    in threads, and each group runs once all of it has compiled: no run shares the cores
    with a compile, so ``wall_time_s`` is the run's own. Rows are written in batch order.
    """
    problem = resolve_problem(problem)
    grid = check_stiffness(stiffness)
    backend = backends.get(backend)
    device = _validation.choose("device", device, backend.devices)
    if not isinstance(adaptive, bool):
        raise ValueError(f"adaptive={adaptive!r} must be True or False.")
    if not adaptive and dt is None:
        raise ValueError("adaptive=False takes fixed steps of dt: give dt= as well (or drop adaptive=False).")
    options = Options(rtol=rtol, atol=atol, dt=dt, adaptive=adaptive, max_steps=max_steps)
    pairs = _pairs(problem, backend, solvers, sensitivities, options, device)
    checkpoint = resume.Checkpoint(resume.prepare_out_dir(out_dir)) if out_dir is not None else None
    model = resume.problem_id(problem)  # traces the problem's functions: once per sweep
    entries = resume.parameter_entries(problem)
    if checkpoint is not None:
        checkpoint.check_entries(model, problem.label, entries)
    base_key = {
        "problem": problem.label,
        "problem_id": model,
        "backend": backend.name,
        "device": device,
        "rtol": float(rtol),
        "atol": float(atol),
        "max_steps": int(max_steps),
    }
    exact = exact_gradients(problem, grid)
    batches, superseded = [], []
    for solver, choice, solver_options in pairs:
        key = {**base_key, "dt": np.nan if solver_options.dt is None else float(solver_options.dt),
               "solver": solver.name, "sensitivity": choice.algorithm.name}
        done = checkpoint.done(key, grid, entries) if checkpoint is not None else resume.empty_frame()
        todo = resume.missing(done, grid)
        if checkpoint is not None:
            superseded.append(checkpoint.other_models(key, grid[todo]))
        batches.append(Batch(key, backend.name, solver, choice, solver_options, device, done, todo))
    if checkpoint is not None:
        warn_other_models(checkpoint.path, problem.label, model, superseded)
    if scheduler is not None:
        frame = pd.concat(run_batches(scheduler, problem, grid, batches, exact, checkpoint, chunk_size=chunk_size,
                                      progress=progress), ignore_index=True)
        warn_far_from_exact(frame)
        return frame
    frames = []
    pool = ThreadPoolExecutor(COMPILE_THREADS, thread_name_prefix="pystiffsens-compile")
    try:
        with tqdm(total=len(batches), desc=f"sweep {problem.label}", unit="batch", disable=not progress) as bar:
            for start in range(0, len(batches), COMPILE_THREADS):
                group = batches[start : start + COMPILE_THREADS]
                bar.set_postfix_str("compiling " + ", ".join(_pair_name(batch) for batch in group))
                compiling = [pool.submit(batch.prepare, problem, grid[batch.todo]) if batch.todo.any() else None
                             for batch in group]
                # Every compile of the group ends before any of its batches runs, so each run's
                # wall time is its own, not shared with a compile on the same cores. A compile that
                # failed raises at its turn, after the batches before it have run and been saved.
                wait([compiled for compiled in compiling if compiled is not None])
                for batch, compiled in zip(group, compiling):
                    bar.set_postfix_str(_pair_name(batch))
                    done = batch.done
                    if compiled is not None:
                        todo = batch.todo
                        rows = batch_rows(batch.key, grid[todo], compiled.result()(),
                                          {name: values[todo] for name, values in exact.items()})
                        if checkpoint is not None:
                            checkpoint.append(rows)
                        done = pd.concat([done, rows], ignore_index=True) if len(done) else rows
                    frames.append(in_grid_order(done, grid))
                    bar.update()
    finally:  # on an error or interrupt, compile nothing more than what is under way
        pool.shutdown(wait=False, cancel_futures=True)
    frame = pd.concat(frames, ignore_index=True)
    warn_far_from_exact(frame)
    return frame


def _pair_name(batch: Batch) -> str:
    return f"{batch.key['solver']} / {batch.key['sensitivity']}"


def _pairs(problem, backend, solvers, sensitivities, options: Options, device: str) -> list:
    """``(solver, sensitivity choice, options for that solver)`` of every pair, every option error raised up front."""
    solver_objects = _distinct([backend.solver(value) for value in _as_list(solvers, "solvers")], "solvers", solvers)
    values = _as_list(sensitivities, "sensitivities")
    t_span = problem.tspan[1] - problem.tspan[0]
    per_solver = {solver.name: options.for_method(solver, t_span) for solver in solver_objects}
    if options.dt is not None and all(o.dt is None for o in per_solver.values()):
        fixed = [name for name in backend.solver_names() if not backend.solver(name).adaptive]
        raise ValueError(
            f"dt={options.dt!r} applies to the fixed-step solvers ({', '.join(fixed)}) only, and none of "
            f"{[solver.name for solver in solver_objects]} is one: drop dt for adaptive steps, or pass adaptive=False "
            "to make these solvers take fixed steps of dt."
        )
    pairs = []
    for solver in solver_objects:
        solver_options = per_solver[solver.name]
        choices = [backends.sensitivity(backend, value, problem, solver, solver_options, device=device)
                   for value in values]
        _distinct([choice.algorithm for choice in choices], "sensitivities", sensitivities)
        for choice in choices:
            backend.check(problem, solver, choice.algorithm, solver_options, device)
            pairs.append((solver, choice, solver_options))
    return pairs


def _as_list(value, kind: str) -> list:
    values = [value] if isinstance(value, str) or not hasattr(value, "__iter__") else list(value)
    if not values:
        raise ValueError(f"{kind}={value!r} must be a name or a non-empty list of names.")
    return values


def _distinct(objects: list, kind: str, given) -> list:
    names = [obj.name for obj in objects]
    if len(set(names)) != len(names):
        raise ValueError(f"{kind}={given!r} names the same method twice ({names}); give each once.")
    return objects


class FarFromExactWarning(RuntimeWarning):
    """Rows of a sweep whose gradient is far from the closed-form one (:func:`warn_far_from_exact`);
    a caller that explains them itself (the demo) filters this category."""


def warn_far_from_exact(frame: pd.DataFrame) -> None:
    """A :class:`FarFromExactWarning` listing, per solver and sensitivity, the rows flagged ``far_from_exact``."""
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
    _warnings.warn(
        f"{len(flagged)} of {len(frame)} gradient rows are far from the closed-form gradient "
        f"(rel_error_exact > {FAR_FROM_EXACT:g}, flagged in the column far_from_exact; the status is the solver's): "
        + "; ".join(lines),
        FarFromExactWarning)


def warn_other_models(path, label: str, model: str, found: list[pd.DataFrame]) -> None:
    """A ``RuntimeWarning`` that the rows ``found`` (stored for this sweep's batches and stiffness values,
    but by another model of the same name) are not reused: the sweep computes those values again."""
    found = [rows for rows in found if len(rows)]
    if not found:
        return
    rows = pd.concat(found, ignore_index=True)
    ids = sorted(set(rows["problem_id"]))
    _warnings.warn(
        f"{path} holds {len(rows)} row(s) of problem {label!r} for these solvers, sensitivities, tolerances and "
        f"stiffness values from a different model (problem_id {', '.join(ids)}; this model is {model}): its "
        "right-hand side, loss, parameters, initial state, time span or save times differ (an edited model, or a "
        "checkpoint from a pystiffsens version that fingerprinted models differently). They are not reused: these "
        "values are computed again; the old rows stay in the file under their own problem_id.",
        RuntimeWarning)


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
