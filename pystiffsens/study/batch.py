"""One batch of a sweep: one solver and one sensitivity method over a whole stiffness grid.

With the JAX backend the grid runs as a single vmapped computation, compiled once; every
stiffness value is an independent lane, so a failed value (non-zero status, NaN loss and
gradient) leaves the others untouched. The step buffers of recording sensitivities start
short (:func:`pystiffsens.memory.first_saved_steps`); the lanes whose buffers fill are
rerun, compiled again with longer ones. The traced program of a built-in problem is kept
on disk (:mod:`pystiffsens._program_cache`), so a rerun skips tracing as well as
compilation. The Julia backend runs the grid as one ensemble.

A batch is prepared in two stages, :func:`compile_batch` then the returned ``run()``, so
that a sweep can compile the next batches in background threads (XLA compiles without
holding the GIL) while it runs the current one.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import _program_cache, _xla
from .. import device as _device
from ..problem import Problem
from ..results import GradientResult


@dataclasses.dataclass(frozen=True)
class Settings:
    """Integration settings shared by every batch of a sweep."""

    backend: str
    device: str
    rtol: float
    atol: float
    dt: float | None
    max_steps: int


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """Per-stiffness-value results of a batch and its timing.

    ``run_time_s`` is the wall time of the batched run over every value; with the JAX backend
    it excludes compilation, which ``compile_time_s`` measures (tracing and XLA compilation).
    Both include the reruns of lanes whose step buffers filled (:mod:`pystiffsens.memory`).
    The Julia backend reports the ensemble call as a whole (its compilation included) and
    ``compile_time_s`` is NaN.
    """

    results: list[GradientResult]
    run_time_s: float
    compile_time_s: float


def compile_batch(
    problem: Problem, stiffness: np.ndarray, solver: str, sensitivity: str, settings: Settings
) -> Callable[[], BatchResult]:
    """Prepare the batch of ``solver`` and ``sensitivity`` over ``stiffness``; return its ``run()``."""
    if settings.backend == "julia":
        return functools.partial(_run_julia, problem, stiffness, solver, sensitivity, settings)

    from .. import memory
    from ..gradient import make_gradient_fn, plan
    from ..solve import check_options

    device = _device.resolve(settings.device)
    solver_obj = check_options(problem, solver, rtol=settings.rtol, atol=settings.atol, dt=settings.dt,
                               max_steps=settings.max_steps)
    algorithm, _, _, first_saved = plan(problem, solver_obj, sensitivity, max_steps=settings.max_steps,
                                        max_saved_steps=None, dt=settings.dt, device=device)
    label = algorithm.name if sensitivity is None or sensitivity == "auto" else sensitivity
    values = jax.device_put(jnp.asarray(stiffness, dtype=jnp.float64), device)

    def compile_lanes(saved, lanes):
        """The batch over ``lanes`` with step buffers of ``saved`` entries, compiled, and its compile time."""
        # Raises before compiling when the estimate for the whole batch exceeds the memory limit ...
        gradient_fn = make_gradient_fn(
            problem, solver_obj.name, algorithm,
            rtol=settings.rtol, atol=settings.atol, dt=settings.dt, max_steps=settings.max_steps,
            max_saved_steps=saved, batch_size=len(lanes),
        )
        batched = _xla.jit(jax.vmap(lambda s: gradient_fn(problem.set_stiffness(problem.params, s))))
        identity = ("study.batch", problem, solver_obj, algorithm, settings, saved)
        start = time.perf_counter()
        compiled = _program_cache.compile_cached(batched, [values[lanes]], identity, device)
        elapsed = time.perf_counter() - start
        # ... and before running when XLA's plan for the compiled batch does.
        memory.check_compiled(compiled, algorithm, gradient_fn.shapes, batch=len(lanes), device=device)
        return compiled, elapsed

    everything = np.arange(len(stiffness))
    compiled = {(first_saved, len(everything)): compile_lanes(first_saved, everything)}

    def run() -> BatchResult:
        # Lanes whose step buffers filled are rerun with longer ones (pystiffsens.memory).
        lanes, out, run_time = everything, None, 0.0
        for saved in memory.saved_step_lengths(first_saved, settings.max_steps):
            key = (saved, len(lanes))
            if key not in compiled:
                compiled[key] = compile_lanes(saved, lanes)
            start = time.perf_counter()
            part = jax.device_get(jax.block_until_ready(compiled[key][0](values[lanes])))
            run_time += time.perf_counter() - start
            if out is None:
                out = jax.tree_util.tree_map(np.array, part)
            else:
                jax.tree_util.tree_map(lambda whole, new: whole.__setitem__(lanes, new), out, part)
            lanes = lanes[np.asarray(part["buffer_full"])]
            if not len(lanes):
                break
        results = [
            GradientResult.from_output(
                jax.tree_util.tree_map(lambda value: value[i], out),
                solver=solver, sensitivity=label, device=settings.device,
            )
            for i in range(len(stiffness))
        ]
        return BatchResult(results, run_time, sum(elapsed for _, elapsed in compiled.values()))

    return run


def _run_julia(problem, stiffness, solver, sensitivity, settings) -> BatchResult:
    from ..julia_backend import gradient_ensemble

    start = time.perf_counter()
    results = gradient_ensemble(
        problem, list(map(float, stiffness)), solver, sensitivity,
        rtol=settings.rtol, atol=settings.atol, dt=settings.dt, max_steps=settings.max_steps,
        device=settings.device,
    )
    return BatchResult(list(results), time.perf_counter() - start, np.nan)
