"""One batch of a sweep: one solver and one sensitivity method over a whole stiffness grid.

With the JAX backend the grid runs as a single vmapped computation, compiled once; every
stiffness value is an independent lane, so a failed value (non-zero status, NaN loss and
gradient) leaves the others untouched. The Julia backend runs the grid as one ensemble.

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
    from ..gradient import make_gradient_fn

    device = _device.resolve(settings.device)
    # Raises before compiling when the estimate for the whole batch exceeds the memory limit.
    gradient_fn = make_gradient_fn(
        problem, solver, sensitivity,
        rtol=settings.rtol, atol=settings.atol, dt=settings.dt, max_steps=settings.max_steps,
        batch_size=len(stiffness),
    )
    if sensitivity is None or sensitivity == "auto":
        sensitivity = gradient_fn.sensitivity
    batched = jax.jit(jax.vmap(lambda s: gradient_fn(problem.set_stiffness(problem.params, s))))
    values = jax.device_put(jnp.asarray(stiffness, dtype=jnp.float64), device)
    start = time.perf_counter()
    compiled = batched.lower(values).compile()
    compile_time = time.perf_counter() - start
    # ... and before running when XLA's plan for the compiled batch does.
    memory.check_compiled(compiled, gradient_fn.algorithm, gradient_fn.shapes, batch=len(stiffness), device=device)

    def run() -> BatchResult:
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(values))
        run_time = time.perf_counter() - start
        out = jax.device_get(out)
        results = [
            GradientResult.from_output(
                jax.tree_util.tree_map(lambda value: value[i], out),
                solver=solver, sensitivity=sensitivity, device=settings.device,
            )
            for i in range(len(stiffness))
        ]
        return BatchResult(results, run_time, compile_time)

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
