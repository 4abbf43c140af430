"""Memory planned before a computation runs, not discovered by an out-of-memory crash.

:func:`check` estimates what a sensitivity algorithm will allocate for a problem and
raises a ``ValueError`` *before anything runs* when that exceeds the memory limit, naming
the estimate and the algorithms that fit. ``pss.gradient``, ``pss.solve`` with step records
and sweep batches check twice, when a program is first compiled and again on every call
against the limit then in force: the estimate (:func:`check`), and the size XLA plans for the
compiled program (:func:`compiled_bytes`, ``Compiled.memory_analysis()``).

Each sensitivity algorithm estimates its own memory (its ``memory(shapes)``, in
:mod:`pystiffsens.sensitivity`), for ``n`` states, ``P`` parameters and step records of
``S = max_saved_steps`` entries, from the cost of one implicit step on ``m`` unknowns
(:func:`pystiffsens.sensitivity.base.step_bytes`): forward mode carries ``P`` tangents,
ForwardSensitivity integrates ``m = n (1 + P)`` unknowns, the adjoints add their ``S``
records. The constants were fitted to XLA's own plans on dense test systems; the
right-hand side's own temporaries are not modelled, which is what the second, compiled
check is for.

Step buffers sized to the solve
-------------------------------
Allocating buffers of ``max_steps`` entries costs time as well as memory (a batch of 32
ROBER gradients with InterpolatingAdjoint: 18.5 ms with records of 1 024 entries, 170 ms
with 100 000; ``benchmarks/bench_records.py``), although a solve rarely takes more than a
few thousand steps. So where the
computation can be rerun, the buffers start short and grow: ``pss.gradient``, sweep batches
and ``pss.solve`` with step records, with the default ``max_saved_steps=None``, start at
:func:`first_saved_steps` entries and, when a recording solve stops because its buffers are
full (:attr:`~pystiffsens.integrate.Trajectory.buffer_full`), run again with buffers
:data:`GROWTH` times longer, up to ``max_steps`` (:func:`saved_step_lengths`). A fixed-step
solve starts with the number of steps it will take. A program that cannot be rerun from
Python (``pss.make_gradient_fn``, ``jax.grad`` through ``pss.solve``) holds two lengths and
uses the longer only when needed (:func:`program_lengths`); at the longer it checkpoints
(:func:`pystiffsens.sensitivity.rules.branches`), so no branch holds ``max_steps`` records.

The limit is, in this order: the ``memory_limit=`` keyword (bytes, or a string such as
``"8GB"``), the environment variable ``PYSTIFFSENS_MEMORY_LIMIT`` (same forms), the memory
of an accelerator device, or :data:`DEFAULT_FRACTION` of the machine's physical memory.
"""

from __future__ import annotations

import functools
import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from . import sensitivity
from .options import Options
from .sensitivity.base import Shapes, suggested_checkpoints

ENV_VAR = "PYSTIFFSENS_MEMORY_LIMIT"
#: Entries of a first automatic step buffer (at most :data:`INITIAL_BUFFER_BYTES` per lane).
INITIAL_SAVED_STEPS = 1024
INITIAL_BUFFER_BYTES = 64 * 2**20
#: An automatic step buffer that fills is made this many times longer for the rerun.
GROWTH = 8
#: Automatic record lengths are multiples of this many entries: on XLA:CPU a vmapped batch of 32
#: ROBER ReverseDiffAdjoint gradients took 31-32 ms with records of 1000, 1012, 1016 or 1032
#: entries against 25.1-25.8 ms with 1008 or 1024 (``benchmarks/bench_records.py``).
RECORD_ALIGNMENT = 16
#: Fraction of physical memory a computation may plan to use by default.
DEFAULT_FRACTION = 0.5
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(value) -> int:
    """Bytes from a number or a string such as ``"8GB"``, ``"512 MiB"``, ``"2e9"``."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if value > 0 and math.isfinite(value):
            return int(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if match and match.group(2).upper() in _UNITS and float(match.group(1)) > 0:
            return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    raise ValueError(
        f"memory limit {value!r} must be a positive number of bytes or a size such as '8GB' or '512MiB' "
        f"(units: {', '.join(u for u in _UNITS if u)})."
    )


def format_size(n_bytes: float) -> str:
    """``1.6 TB``, ``19 GB``, ``240 kB``: decimal units, two significant digits."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= size:
            return f"{n_bytes / size:.3g} {unit}"
    return f"{int(n_bytes)} B"


def limit(memory_limit=None, device=None) -> tuple[int, str]:
    """The memory limit in bytes and where it comes from."""
    if memory_limit is not None:
        return parse_size(memory_limit), "memory_limit="
    if os.environ.get(ENV_VAR):
        return parse_size(os.environ[ENV_VAR]), f"${ENV_VAR}"
    if device is not None and device.platform != "cpu":
        stats = device.memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"]), f"memory of {device.device_kind}"
    return int(DEFAULT_FRACTION * _physical_memory()), f"{DEFAULT_FRACTION:.0%} of physical memory"


@functools.cache
def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _bytes(tree) -> int:
    return sum(int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree))


def shapes(rhs, solver, y0, theta, n_stops, saved_steps) -> Shapes:
    """The sizes of one solver state and one step's dense output, by ``jax.eval_shape`` (nothing runs)."""
    y0, theta = (jax.ShapeDtypeStruct(np.shape(x), jnp.float64) for x in (y0, theta))
    options = Options()
    state = jax.eval_shape(lambda y, th: solver.init(rhs, 0.0, y, th, 1e-3), y0, theta)
    dense = jax.eval_shape(lambda s, th: solver.attempt(rhs, 0.0, 1e-3, s, th, options).dense, state, theta)
    return Shapes(int(y0.shape[0]), sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(theta)), int(n_stops),
                  _bytes(state), _bytes(dense), int(saved_steps))


def total(algorithm, s: Shapes, batch: int = 1) -> int:
    """Estimated bytes of ``batch`` derivatives with ``algorithm`` (its own :meth:`memory` estimate)."""
    return batch * sum(algorithm.memory(s).values())


def sizing() -> tuple:
    """The module settings automatic record lengths are computed from (:func:`first_saved_steps`,
    :func:`saved_step_lengths`, :func:`program_lengths`): lengths kept for a repeated call are
    valid while this is unchanged."""
    return INITIAL_SAVED_STEPS, INITIAL_BUFFER_BYTES, GROWTH, RECORD_ALIGNMENT


def first_saved_steps(max_steps: int, step_bytes: int, *, t_span: float, dt: float | None = None,
                      n_stops: int = 1) -> int:
    """Length of a first automatic step buffer of records of ``step_bytes`` each.

    :data:`INITIAL_SAVED_STEPS` (fewer, but at least 256, when that would exceed
    :data:`INITIAL_BUFFER_BYTES`); with fixed steps ``dt``, the steps the solve will take over
    ``t_span`` (one more per saved time it lands on). Never more than ``max_steps``.
    """
    length = min(INITIAL_SAVED_STEPS, max(256, INITIAL_BUFFER_BYTES // max(int(step_bytes), 1)))
    if dt is not None:
        length = max(length, math.ceil(abs(t_span) / dt) + n_stops + 1)
    return int(min(length, max_steps))


def aligned(length: int) -> int:
    """``length`` rounded up to a multiple of :data:`RECORD_ALIGNMENT` entries."""
    return -(-int(length) // RECORD_ALIGNMENT) * RECORD_ALIGNMENT


def saved_step_lengths(first: int, max_steps: int) -> tuple[int, ...]:
    """The lengths an automatic step buffer takes: ``first``, then :data:`GROWTH` times longer
    after each one that filled, up to ``max_steps`` (which follows directly once a further
    growth would pass half of it). The caller stops at the first length a solve fits.
    Every length is :func:`aligned`; a last length above ``max_steps`` never fills, since the
    solve stops at ``max_steps`` steps first."""
    cap = aligned(max_steps)
    lengths = [min(aligned(first), cap)]
    while lengths[-1] < cap:
        grown = GROWTH * lengths[-1]
        lengths.append(cap if 2 * grown > cap else grown)
    return tuple(lengths)


def program_lengths(first: int, max_steps: int) -> tuple[int, ...]:
    """The record lengths one compiled program holds when it cannot be rerun from Python.

    ``pss.make_gradient_fn`` and ``jax.grad`` through ``pss.solve`` put each length in a
    branch of the program (``lax.cond``) and run the longer only when a solve filled the
    shorter. Every branch is compiled, so there are two: ``first`` and ``max_steps``
    (both :func:`aligned`); a solve longer than ``first`` steps runs the sensitivity with
    checkpoints every ``first`` steps or fewer (:func:`pystiffsens.sensitivity.rules.branches`).
    """
    cap = aligned(max_steps)
    first = min(aligned(first), cap)
    return (first,) if first >= cap else (first, cap)


def candidates(saved_steps: int) -> list:
    """Every native algorithm, and those that record per step with :func:`suggested_checkpoints`."""
    checkpoints = suggested_checkpoints(saved_steps)
    return [*sensitivity.CATALOG, *(alg.checkpointed(checkpoints) for alg in sensitivity.CATALOG if alg.records)]


def _fits(s: Shapes, batch: int, budget: int) -> list[str]:
    out = []
    for alg in candidates(s.saved_steps):
        need = total(alg, s, batch)
        if need <= budget:
            out.append(f"{alg.label()} (~{format_size(need)})")
    return out


def _over_limit(algorithm, need: int, how: str, s: Shapes, batch: int, budget: int, source: str) -> ValueError:
    """The error for ``algorithm`` needing ``need`` bytes over the limit, naming the algorithms that fit."""
    if algorithm is None:  # the step records of a plain solve
        return ValueError(
            f"save_steps=True needs a step buffer of {format_size(need)} ({s.saved_steps} steps of {s.n} states) for "
            f"this solve, more than the memory limit of {format_size(budget)} ({source}). Pass save_steps=False (the "
            f"saved times still come back), a smaller max_steps=, or raise the limit with memory_limit= or ${ENV_VAR}."
        )
    fits = _fits(s, batch, budget)
    where = f"{s.n} states, {s.P} parameters, max_saved_steps={s.saved_steps}" + (f", batch of {batch}" if batch > 1 else "")
    advice = (f"Sensitivities that fit: {', '.join(fits)}." if fits else
              "No native sensitivity fits; lower max_saved_steps= (or max_steps=), the batch size, or the problem size.")
    return ValueError(
        f"sensitivity={algorithm.label()!r} would need {how} {format_size(need)} for this problem ({where}), "
        f"more than the memory limit of {format_size(budget)} ({source}). {advice} "
        f"Adjoints (ReverseDiffAdjoint with checkpoints=, GaussAdjoint, InterpolatingAdjoint) need memory "
        f"independent of the number of parameters. Change the limit with memory_limit= or ${ENV_VAR}."
    )


def check_bytes(need: int, algorithm, s: Shapes, *, batch: int = 1, memory_limit=None, device=None) -> None:
    """``ValueError`` when ``need`` estimated bytes for ``algorithm`` (None: a solve's records) exceed the limit."""
    check_program(need, 0, algorithm, s, batch=batch, memory_limit=memory_limit, device=device)


def check_program(estimate: int, planned: int, algorithm, s: Shapes, *, batch: int = 1, memory_limit=None,
                  device=None) -> None:
    """``ValueError`` when a program's ``estimate`` or XLA's plan of it (``planned``; bytes) exceeds the limit."""
    budget, source = limit(memory_limit, device)
    for need, how in ((estimate, "an estimated"), (planned, "(as XLA plans it)")):
        if need > budget:
            raise _over_limit(algorithm, need, how, s, batch, budget, source)


def check(algorithm, s: Shapes, *, batch: int = 1, memory_limit=None, device=None) -> int:
    """Raise ``ValueError`` when the estimate for ``algorithm`` exceeds the limit; return the estimate."""
    need = total(algorithm, s, batch)
    check_bytes(need, algorithm, s, batch=batch, memory_limit=memory_limit, device=device)
    return need


def compiled_bytes(compiled) -> int:
    """The memory XLA plans for a compiled program (arguments, outputs, temporaries); 0 where it cannot say."""
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # noqa: BLE001  (backends without memory analysis: the estimate stands alone)
        return 0
    if analysis is None:
        return 0
    return int(analysis.temp_size_in_bytes + analysis.argument_size_in_bytes + analysis.output_size_in_bytes)
