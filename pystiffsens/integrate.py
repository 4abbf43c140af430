"""The integration loop shared by every solver, sensitivity algorithm and backward solve.

``integrate`` advances any :class:`~pystiffsens.solvers.base.AbstractSolver` from ``t0``
to the last of ``stops`` inside one ``lax.while_loop`` (jit-, vmap- and forward-mode
differentiable). It steps exactly onto every stop (like SciML's ``tstops``) and saves the
state there, so saved states never involve interpolation. Step sizes, orders and
accept/reject decisions are computed from primal values only and never differentiated:
every derivative pystiffsens takes is the derivative of the discrete map with these
controls held fixed.

Batched cost follows the steps taken
------------------------------------
Under ``jax.vmap`` a ``lax.while_loop`` whose predicate is batched runs until every lane
is done and *selects* between the old and the new carry of every lane on every
iteration, so each per-step buffer (``max_steps`` long) would be copied on every step.
Here the loop predicate is unbatched: :func:`~pystiffsens.lanes.any_lane` (a
``jax.custom_batching.custom_vmap`` rule, the same idea as equinox's ``unvmap_any`` used by
diffrax) reduces "this lane is still running" over the batch. Inside the body each lane
masks its own update: the small part of the carry (time, step, solver state, counters) with
``jnp.where``, the buffers with writes whose index is pushed out of bounds (``mode="drop"``)
for lanes that are done or steps that were rejected. A scatter of one row is done in place, so a batch costs
about the sum of its lanes' steps, independent of the buffer length.

Memory is planned
-----------------
Nothing of length ``max_steps`` is allocated unless the caller asks to record steps.
``record_states`` / ``record_dense`` allocate per-step buffers of ``saved_steps`` entries
(:mod:`pystiffsens.memory` estimates their size before a gradient runs). When a recording
solve needs more accepted steps than its buffers hold, it stops with status ``MaxIters``
(never silently drops a step) and reports ``buffer_full``. ``checkpoints=C`` instead keeps
``C`` snapshots of the loop, one every ``ceil(saved_steps / C)`` accepted steps, from which
:func:`integrate_from` recomputes a segment of steps on demand (the two-level
checkpointing of Griewank & Walther, *Evaluating Derivatives*, 2nd ed., Sect. 12).

Stops at the initial time
-------------------------
A stop equal to ``t0`` (``saveat`` starting at ``t0``) is reached before the first step: its
saved state is ``y0``, and the loop starts at the next stop. Stops may be traced values.

Stops next to each other
------------------------
A stop at most two units in the last place ahead is reached by a step of a sixteenth of the
gap, which the error test does not judge (no shorter step could replace it) and after which
the step size proposed before it is kept and a multistep method restarts at order one
(:meth:`~pystiffsens.solvers.base.AbstractSolver.restart`). Every stage time of such a step
rounds to its start, so it sees the right-hand side on that side: with stops next to a time
where the right-hand side jumps (:mod:`pystiffsens.sbml.switches`), no step has that time
inside it or evaluates the right-hand side on the far side of it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .lanes import any_lane, every_lane, tree_where, while_loop
from .results import STAT_NAMES
from .returncode import ReturnCode
from .solvers.base import scaled_rms

RUNNING = -1
EPS = float(jnp.finfo(jnp.float64).eps)
FAIL_ERROR, FAIL_NEWTON, FAIL_NONFINITE = 0, 1, 2


class Trajectory(NamedTuple):
    """What ``integrate`` returns.

    Attributes
    ----------
    ys : (n_stops, n) states at the stops (NaN for stops not reached).
    status : ReturnCode value.
    stats : dict of counters (``n_steps``, ``n_rejected``, ``n_f``, ``n_jac``, ``n_lu``).
    n_steps : accepted steps.
    step_t : (max_saved_steps + 1,) start times of the accepted steps, entries past
        ``n_steps`` ``+inf``; None when nothing is recorded.
    step_y : (max_saved_steps + 1, n) the state ``y`` at ``step_t`` with ``record_y``, zero past
        ``n_steps``; otherwise None.
    step_h : (max_saved_steps,) accepted step sizes, or None.
    step_stop : (max_saved_steps,) index of the stop step ``i`` ended on, or -1; or None.
    states : solver states at ``step_t`` (leading axis max_saved_steps + 1), or None.
    dense : dense-output coefficients per accepted step (leading axis max_saved_steps), or None.
    h0 : the step size the solver state was initialised with.
    checkpoints : with ``checkpoints=C``, the loop state (see :func:`integrate_from`) after
        ``0, L, 2L, ...`` accepted steps, leading axis ``C``; otherwise None.
    checkpoint_every : ``L`` (a Python int), or None.
    buffer_full : whether the solve stopped (status ``MaxIters``) because its step buffers
        were full while ``max_steps`` allowed more attempts: rerun with a larger
        ``max_saved_steps`` to go on. Always False when nothing is recorded.
    accumulated : with ``accumulate=(fn, init)``, ``init`` plus ``fn`` of every accepted step;
        otherwise None.
    h_next : the step size the loop would have tried next (to start a following solve with).
    """

    ys: Any
    status: Any
    stats: dict
    n_steps: Any
    step_t: Any
    step_h: Any
    step_stop: Any
    states: Any
    dense: Any
    h0: Any
    checkpoints: Any = None
    checkpoint_every: Any = None
    buffer_full: Any = False
    accumulated: Any = None
    step_y: Any = None
    h_next: Any = None


class Segment(NamedTuple):
    """Steps recomputed by :func:`integrate_from`, indexed from the checkpoint (local index 0)."""

    n_steps: Any  # accepted steps in the segment
    step_t: Any  # (length + 1,)
    step_h: Any  # (length,)
    step_stop: Any  # (length,)
    states: Any = None  # leading axis length + 1, with record_states
    dense: Any = None  # leading axis length, with record_dense


def zero_counters() -> dict:
    """Cost counters (:data:`~pystiffsens.results.STAT_NAMES`) set to zero."""
    return {name: jnp.asarray(0, jnp.int32) for name in STAT_NAMES}


def initial_step(fn, t0, y0, args, t_span, order, rtol, atol):
    """Hairer, Nørsett & Wanner I, Sect. II.4 starting step (as scipy's ``select_initial_step``)."""
    scale = atol + jnp.abs(y0) * rtol
    f0 = fn(t0, y0, args)
    d0, d1 = scaled_rms(y0, scale), scaled_rms(f0, scale)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0))
    h0 = jnp.minimum(h0, t_span)
    f1 = fn(t0 + h0, y0 + h0 * f0, args)
    d2 = scaled_rms(f1 - f0, scale) / h0
    big = jnp.maximum(d1, d2)
    h1 = jnp.where(big <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / jnp.where(big > 0, big, 1.0)) ** (1.0 / (order + 1)))
    h = jnp.minimum(jnp.minimum(100 * h0, h1), t_span)
    return lax.stop_gradient(jnp.where(jnp.isfinite(h) & (h > 0), h, 1e-6 * t_span))


def _buffer(example, length):
    """Zeros for ``length`` records shaped like ``example``, which XLA cannot fold into a constant.

    A step buffer whose first entry is written from a constant (a problem's ``y0``) would
    otherwise be folded into a literal of the whole buffer, stored in the executable and
    copied into place on each run; ``lax.optimization_barrier`` keeps it a zero fill.
    Measured with ``max_steps`` = 1e5 (benchmarks/README.md): a dense 300-state
    ReverseDiffAdjoint gradient compiled in 5.7 s instead of 7.4 s (1.2 s of which was the
    fold) and ran in 1.30 s instead of 1.41 s; a batch of 32 ROBER gradients ran in 77-90 ms
    instead of 88-94 ms.
    """
    return jax.tree_util.tree_map(
        lambda x: lax.optimization_barrier(jnp.zeros((length,) + jnp.shape(x), jnp.result_type(x))), example
    )


def _write(buffer, index, value, when=True):
    """``buffer[index] = value`` where ``when`` holds; otherwise nothing (the index is pushed out of bounds).

    On a :class:`_Log` the write is noted in its next row, to be applied by :func:`_flush`.
    """
    if isinstance(buffer, _Log):
        return buffer.note(index, value, when)

    def one(b, v):
        return b.at[jnp.where(when, index, b.shape[0])].set(v, mode="drop")

    return jax.tree_util.tree_map(one, buffer, value)


class _Log(NamedTuple):
    """The writes a few loop iterations make to a large buffer, one row each, until :func:`_flush` applies them.

    ``index`` is where each row goes (-1: nowhere), ``rows`` the values, shaped like the
    buffer's entries, ``position`` the row the next write fills: the inner loop's iteration,
    set by :meth:`_Loop._run_logged` (None while the log is carried).
    """

    index: Any
    rows: Any
    position: Any = None

    @classmethod
    def empty(cls, buffer, length: int):
        rows = jax.tree_util.tree_map(lambda b: jnp.zeros((length,) + b.shape[1:], b.dtype), buffer)
        return cls(jnp.full((length,), -1, jnp.int32), rows)

    def note(self, index, value, when):
        rows = jax.tree_util.tree_map(lambda r, v: r.at[self.position].set(v), self.rows, value)
        return _Log(self.index.at[self.position].set(jnp.where(when, index, -1).astype(jnp.int32)), rows)


def _flush(buffer, log: _Log):
    """``buffer`` with the writes noted in ``log`` applied (rows noted nowhere are dropped)."""
    length = jax.tree_util.tree_leaves(buffer)[0].shape[0]
    index = jnp.where(log.index >= 0, log.index, length)
    return jax.tree_util.tree_map(lambda b, r: b.at[index].set(r, mode="drop"), buffer, log.rows)


SEQUENTIAL_BUFFER_BYTES = 512
"""XLA:CPU runs the operations of a computation one after another, without its concurrent
executor's per-operation scheduling, when every operation touches buffers of at most this
many bytes (``ThunkExecutor::Options::execute_sequential_buffer_threshold``, read from XLA's
source; it is not configurable) or when there are at most 8 operations."""


def _large(tree) -> bool:
    """Whether a leaf of ``tree`` holds more than :data:`SEQUENTIAL_BUFFER_BYTES` bytes."""
    return any(np.size(x) * np.dtype(x.dtype).itemsize > SEQUENTIAL_BUFFER_BYTES
               for x in jax.tree_util.tree_leaves(tree))


def _log_rows(core, buffers, logged) -> tuple[int, tuple[str, ...]]:
    """How many iterations a loop runs between flushes of its large buffers, and which those are (:meth:`_Loop.run`).

    ``(0, ())`` where no buffer is large, where something other than a logged buffer is,
    or where fewer than two rows of the largest entry fit in :data:`SEQUENTIAL_BUFFER_BYTES`.
    """
    keys = tuple(k for k in logged if k in buffers and _large(buffers[k]))
    if not keys or _large((core, {k: v for k, v in buffers.items() if k not in keys})):
        return 0, ()
    entry = max(np.prod(x.shape[1:], dtype=int) * np.dtype(x.dtype).itemsize
                for k in keys for x in jax.tree_util.tree_leaves(buffers[k]))
    rows = SEQUENTIAL_BUFFER_BYTES // max(int(entry), 1)
    return (rows, keys) if rows >= 2 else (0, ())


def _step_in_branch(core, buffers) -> bool:
    """Whether to put a loop's step in a ``lax.cond`` branch of its own (:meth:`_Loop.run`).

    A loop that carries step records larger than :data:`SEQUENTIAL_BUFFER_BYTES` makes XLA:CPU
    schedule every operation of its body concurrently, which costs more than the small
    operations of a step on a few states (ROBER with Rodas5P: 2.3 us per step, twice the
    step itself). In a branch of its own, a step whose values are all small runs
    sequentially, and the body left around it is the branch and the record writes. Measured
    on the 197 step attempts of ROBER (Rodas5P, rtol 1e-8), a solve recording its steps took
    0.50 ms instead of 0.85 ms; without records, 0.39 ms (benchmarks/README.md).
    """
    return _large(buffers) and not _large(core)


def branch_if_records_large(update, carry, row, records, when):
    """``update(carry, row)``, in a ``lax.cond`` branch of its own when ``records`` are large (:func:`_step_in_branch`).

    For loops that read one row of step records per iteration (the discrete adjoint's pull
    back): the row is read in the loop body, the work on it runs in the branch, which passes
    ``carry`` through unchanged where ``when`` (per lane) holds for no lane.
    """
    if not _step_in_branch((carry, row), records):
        return update(carry, row)
    return lax.cond(any_lane(when), update, lambda c, r: c, carry, row)


#: The per-step records: buffer, offset of step ``i``'s entry from ``i``, and the field of the step's record it keeps
#: (``step_t`` and ``states`` start with the initial time and state at entry 0).
STEP_RECORDS = (("step_t", 1, "t_new"), ("step_h", 0, "h"), ("step_stop", 0, "stop"), ("states", 1, "state"),
                ("dense", 0, "dense"))


def _write_steps(bufs, r, i, accepted) -> dict:
    """The :data:`STEP_RECORDS` among ``bufs`` with accepted step ``i``'s entries written."""
    fields = dict(r, stop=jnp.where(r["land"], r["k"], -1))
    return {name: _write(bufs[name], i + offset, fields[field], accepted)
            for name, offset, field in STEP_RECORDS if name in bufs}


def checkpoint_interval(max_saved_steps: int, checkpoints: int) -> int:
    """Accepted steps between two of ``checkpoints`` snapshots covering ``max_saved_steps`` steps."""
    return max(1, math.ceil(max_saved_steps / checkpoints))


class _Loop:
    """One integration problem: what every step of ``integrate`` and ``integrate_from`` shares.

    ``options`` are resolved :class:`~pystiffsens.options.Options` (``dt`` None exactly for
    adaptive steps); the solvers read their ``rtol`` and ``atol``.
    """

    def __init__(self, fn, solver, args, *, t0, stops, options, error_mask):
        self.fn, self.solver, self.args = fn, solver, args
        self.stops = jnp.asarray(stops, dtype=jnp.float64)
        self.t0 = jnp.asarray(t0, dtype=jnp.float64)
        self.t_end = self.stops[-1]
        self.n_stops = self.stops.shape[0]
        self.tol = options
        self.fixed = options.dt is not None
        self.dt = options.dt
        self.max_steps = options.max_steps
        self.error_mask = error_mask
        self._traced: dict = {}

    def reached_at_start(self):
        """How many stops lie at (or before) ``t0``: 0, or 1 when ``saveat`` starts at ``t0``."""
        return jnp.sum(self.stops <= self.t0).astype(jnp.int32)

    def core(self, h_init, state0, counters):
        """The small part of the loop carry; a checkpoint is a copy of it."""
        k0 = self.reached_at_start()
        status = jnp.where(k0 >= self.n_stops, ReturnCode.Success, RUNNING)
        return dict(t=self.t0, h=h_init, state=state0, k=k0, status=status, stats=counters, attempts=jnp.asarray(0))

    def traced_advance(self, core, max_saved_steps=None, *, only_if_traced=False):
        """:meth:`advance` traced once: a function of the core that evaluates its jaxpr, and the shapes it returns.

        A loop may need the step three times: the shapes of its dense output (to allocate the
        buffer), the branch that skips a step (:meth:`run`), and the loop body. Tracing a solver
        step is most of the Python work of a program; evaluating the traced jaxpr binds the same
        operations again without the Python that built them, and gives the same program (single
        ROBER gradients of Rodas5P, FBDF and KenCarp4 with recording sensitivities traced in
        0.72-0.97x the time, benchmarks/README.md section 4). A loop that needs the step once is
        better off tracing it in place: with ``only_if_traced`` this returns None unless the
        step was traced already.
        """
        flat_core, core_tree = jax.tree_util.tree_flatten(core)
        key = (max_saved_steps, core_tree, tuple((jnp.shape(leaf), jnp.result_type(leaf)) for leaf in flat_core))
        if only_if_traced and key not in self._traced:
            return None
        if key not in self._traced:
            closed, shapes = jax.make_jaxpr(lambda c: self.advance(c, max_saved_steps), return_shape=True)(core)
            out_tree = jax.tree_util.tree_structure(shapes)

            def evaluate(c):
                out = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *jax.tree_util.tree_leaves(c))
                return jax.tree_util.tree_unflatten(out_tree, out)

            self._traced[key] = evaluate, shapes
        return self._traced[key]

    def advance(self, c, max_saved_steps=None):
        """One step attempt: the new core and what to record (``ok`` says whether it was accepted)."""
        solver, tol, fixed = self.solver, self.tol, self.fixed
        t, h, state, k = c["t"], c["h"], c["state"], c["k"]
        stop_t = self.stops[jnp.minimum(k, self.n_stops - 1)]
        remaining = stop_t - t
        # Stops next to each other (module docstring): every stage time t + c h of the step rounds to t, and the state
        # moves by less than time resolves there. Such a step is shorter than h_min below: no error test can shrink it.
        adjacent = remaining <= 2 * EPS * jnp.abs(stop_t)
        land = adjacent | (h >= remaining * (1.0 - 1e-12))
        h_try = jnp.where(adjacent, remaining / 16, jnp.where(land, remaining, h))
        attempt = solver.attempt(self.fn, t, h_try, state, self.args, tol)
        y_old, y_new = solver.y_of(state), solver.y_of(attempt.state)
        scale = tol.atol + tol.rtol * jnp.maximum(jnp.abs(y_old), jnp.abs(y_new))
        err_norm = lax.stop_gradient(scaled_rms(attempt.error, scale, self.error_mask))
        finite = jnp.all(jnp.isfinite(y_new)) & jnp.isfinite(err_norm)
        # With fixed steps the error estimate only informs order selection (FBDF), never acceptance; nor does it decide
        # a step to an adjacent stop (a multistep method's history from before a switch would call it wrong).
        ok = attempt.converged & finite & (fixed | adjacent | (err_norm <= 1.0))

        accepted_state, h_accept = solver.accept(attempt.state, err_norm, h_try, tol)
        accepted_state = tree_where(adjacent, solver.restart(accepted_state), accepted_state)
        rejected_norm = jnp.where(attempt.converged & finite, err_norm, jnp.inf)
        h_reject = solver.reject(state, rejected_norm, h_try, tol)
        h_next = self.dt if fixed else lax.stop_gradient(jnp.where(adjacent, h, jnp.where(ok, h_accept, h_reject)))
        h_next = jnp.asarray(h_next, jnp.float64)
        t_new = jnp.where(land, stop_t, t + h_try)

        stats = dict(c["stats"])
        stats["n_steps"] = stats["n_steps"] + ok
        stats["n_rejected"] = stats["n_rejected"] + ~ok
        stats["n_f"] = stats["n_f"] + attempt.n_f
        stats["n_jac"] = stats["n_jac"] + attempt.n_jac
        stats["n_lu"] = stats["n_lu"] + attempt.n_lu
        saved = ok & land
        attempts = c["attempts"] + 1

        reason = jnp.where(~finite, FAIL_NONFINITE, jnp.where(~attempt.converged, FAIL_NEWTON, FAIL_ERROR))
        failure_code = jnp.select(
            [reason == FAIL_NONFINITE, reason == FAIL_NEWTON],
            [ReturnCode.Unstable, ReturnCode.ConvergenceFailure],
            ReturnCode.DtLessThanMin,
        )
        if fixed:
            failed = ~ok
        else:
            h_min = 10 * EPS * jnp.maximum(jnp.abs(t), jnp.abs(self.t_end - self.t0) * 1e-6)
            failed = ~ok & (h_next < h_min)
        status = jnp.where(saved & (k == self.n_stops - 1), ReturnCode.Success, RUNNING)
        status = jnp.where(failed, failure_code, status)
        out_of_budget = attempts >= self.max_steps
        if max_saved_steps is not None:
            # The step buffers are full: going on would lose steps the caller needs.
            out_of_budget = out_of_budget | (stats["n_steps"] >= max_saved_steps)
        status = jnp.where((status == RUNNING) & out_of_budget, ReturnCode.MaxIters, status)

        new = dict(t=jnp.where(ok, t_new, t), h=h_next, state=tree_where(ok, accepted_state, state),
                   k=k + saved, status=status, stats=stats, attempts=attempts)
        record = dict(ok=ok, index=c["stats"]["n_steps"], t=t, t_new=t_new, h=h_try, land=land, k=k, saved=saved,
                      y=y_new, state=accepted_state, dense=attempt.dense)
        return new, record

    def run(self, core, buffers, write, running=None, max_saved_steps=None, logged=()):
        """Loop until no lane runs; ``write(buffers, record, live, new_core)`` does the masked buffer writes.

        ``logged`` names the buffers ``write`` changes only through :func:`_write`. Where those
        are large and the rest of the carry is small (:func:`_log_rows`), the loop runs in two
        levels: an inner loop of a few iterations whose carry is small, so that XLA:CPU runs
        it sequentially, noting its writes in :class:`_Log` rows, and an outer loop that
        applies them to the large buffers (:func:`_flush`). Otherwise a step beside large
        buffers runs in a branch of its own (:func:`_step_in_branch`).

        Under ``vmap`` the whole carry is batched from the start (:func:`~pystiffsens.lanes.every_lane`).
        """
        running = running or (lambda c: c["status"] == RUNNING)
        rows, keys = _log_rows(core, buffers, logged)
        if rows:
            return self._run_logged(core, buffers, write, running, max_saved_steps, rows, keys)
        in_branch = _step_in_branch(core, buffers)
        traced = self.traced_advance(core, max_saved_steps, only_if_traced=not in_branch)
        advance = traced[0] if traced else (lambda c: self.advance(c, max_saved_steps))

        def step(c):
            live = running(c)
            new, record = advance(c)
            return tree_where(live, new, c), record, live

        if in_branch:
            record_shapes = traced[1][1]
            skip = lambda c: (c, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), record_shapes),
                              jnp.zeros((), bool))
            step_of = lambda c: lax.cond(any_lane(running(c)), step, skip, c)
            loop = lax.while_loop
        else:
            # A small carry keeps its scalars stacked (lanes.while_loop); beside large buffers that was
            # slower, in the logged loops too (benchmarks/README.md, section 6).
            step_of, loop = step, while_loop

        def body(carry):
            c, bufs = carry
            new, record, live = step_of(c)
            return new, write(bufs, record, live, new)

        return loop(lambda carry: any_lane(running(carry[0])), body, every_lane((core, buffers)))

    def _run_logged(self, core, buffers, write, running, max_saved_steps, rows, keys):
        """:meth:`run` with the writes to the buffers ``keys`` noted in ``rows``-row logs and flushed between inner loops.

        Measured on ROBER (rtol 1e-8, ``bench_loop_layouts.py``), a Rodas5P solve recording its
        steps in buffers of 1024 took 0.432 ms this way and 0.513 ms with its step in a branch
        beside them (without records, 0.255 ms), FBDF's discrete adjoint gradient 2.72 ms
        against 4.53 ms (benchmarks/README.md, section 6).
        """
        traced = self.traced_advance(core, max_saved_steps, only_if_traced=True)
        advance = traced[0] if traced else (lambda c: self.advance(c, max_saved_steps))

        def inner(carry):
            (c, small, logs), position = carry
            live = running(c)
            new, record = advance(c)
            new = tree_where(live, new, c)
            out = write(dict(small, **{k: logs[k]._replace(position=position) for k in keys}), record, live, new)
            return (new, {k: out[k] for k in small}, {k: out[k]._replace(position=None) for k in keys}), position + 1

        def outer(carry):
            c, bufs = carry
            small = {k: v for k, v in bufs.items() if k not in keys}
            logs = {k: _Log.empty(bufs[k], rows) for k in keys}
            (c, small, logs), _ = lax.while_loop(
                lambda inner_carry: any_lane(running(inner_carry[0][0])) & (inner_carry[1] < rows),
                inner, (every_lane((c, small, logs)), jnp.asarray(0, jnp.int32)))
            return c, dict(small, **{k: _flush(bufs[k], logs[k]) for k in keys})

        return lax.while_loop(lambda carry: any_lane(running(carry[0])), outer, every_lane((core, buffers)))


def integrate(
    fn,
    solver,
    y0,
    args,
    *,
    t0,
    stops,
    options,
    saved_steps: int | None = None,
    record_states: bool = False,
    record_dense: bool = False,
    record_y: bool = False,
    checkpoints: int | None = None,
    error_mask=None,
    accumulate=None,
    h_init=None,
) -> Trajectory:
    """Integrate ``y' = fn(t, y, args)`` from ``t0`` through every time in ``stops``.

    ``options`` are resolved :class:`~pystiffsens.options.Options`: ``dt`` (None, or a
    traced/float value) selects fixed steps, otherwise steps are adaptive with
    ``rtol``/``atol``; ``max_steps`` bounds the step attempts (no memory depends on it).
    ``record_states``/``record_dense`` keep, per accepted step, the solver state at its start
    and the dense-output coefficients, in buffers of ``saved_steps`` (default ``max_steps``)
    entries. ``record_y`` keeps only ``y`` and the time of each accepted step (what a solve
    returns), without the other records. ``checkpoints=C`` keeps ``C`` snapshots for
    :func:`integrate_from` instead.
    ``error_mask`` (0/1 per component) restricts the error norm, e.g. to the state part of
    an augmented system. ``accumulate=(fn, init)`` sums ``fn(step, accepted)`` over the step
    attempts, starting from ``init`` (``Trajectory.accumulated``): ``step`` holds the
    attempt's start ``t``, size ``h`` and ``dense`` output, and ``fn`` must give zero where
    ``accepted`` is False. A quadrature along the solve is computed this way without
    recording its steps. ``h_init`` is the first step size of adaptive steps (default: Hairer,
    Nørsett & Wanner's estimate, :func:`initial_step`), e.g. where a previous solve left off.
    """
    dt = options.dt
    loop = _Loop(fn, solver, args, t0=t0, stops=stops, options=options, error_mask=error_mask)
    counters = zero_counters()
    if loop.fixed:
        h_init = jnp.minimum(jnp.asarray(dt, jnp.float64), loop.t_end - loop.t0)
    elif h_init is not None:
        h_init = jnp.minimum(jnp.asarray(h_init, jnp.float64), loop.t_end - loop.t0)
    else:
        h_init = initial_step(fn, loop.t0, y0, args, loop.t_end - loop.t0, solver.error_order + 1,
                              loop.tol.rtol, loop.tol.atol)
        counters["n_f"] = counters["n_f"] + 2
    state0 = solver.init(fn, loop.t0, y0, args, h_init)
    core = loop.core(h_init, state0, counters)

    recording = record_states or record_dense or record_y or checkpoints is not None
    saved_steps = options.max_steps if saved_steps is None else int(saved_steps)
    every = checkpoint_interval(saved_steps, checkpoints) if checkpoints is not None else None
    per_step = record_states or record_dense
    ys = jnp.full((loop.n_stops, y0.shape[0]), jnp.nan, dtype=y0.dtype)
    buffers = dict(ys=jnp.where(jnp.arange(loop.n_stops)[:, None] < core["k"], y0, ys))
    if per_step or record_y:
        buffers["step_t"] = jnp.full((saved_steps + 1,), jnp.inf).at[0].set(loop.t0)
    if record_y:
        buffers["step_y"] = _write(_buffer(y0, saved_steps + 1), 0, y0)
    if per_step:
        buffers["step_h"] = jnp.zeros((saved_steps,))
        buffers["step_stop"] = jnp.full((saved_steps,), -1)
    if record_states:
        buffers["states"] = _write(_buffer(state0, saved_steps + 1), 0, state0)
    max_saved_steps = saved_steps if recording else None
    if record_dense:
        buffers["dense"] = _buffer(loop.traced_advance(core, max_saved_steps)[1][1]["dense"], saved_steps)
    if checkpoints is not None:
        buffers["checkpoints"] = _write(_buffer(core, checkpoints), 0, core)
    if accumulate is not None:
        buffers["accumulated"] = accumulate[1]

    def write(bufs, r, live, new):
        out = dict(bufs)
        out["ys"] = _write(bufs["ys"], r["k"], r["y"], live & r["saved"])
        accepted = live & r["ok"]
        out.update(_write_steps(bufs, r, r["index"], accepted))
        if record_y:
            out["step_y"] = _write(bufs["step_y"], r["index"] + 1, solver.y_of(r["state"]), accepted)
        if checkpoints is not None:
            n = new["stats"]["n_steps"]
            take = accepted & (n % every == 0) & (new["status"] == RUNNING)
            out["checkpoints"] = _write(bufs["checkpoints"], n // every, new, take)
        if accumulate is not None:
            out["accumulated"] = jax.tree_util.tree_map(jnp.add, bufs["accumulated"], accumulate[0](r, accepted))
        return out

    out, bufs = loop.run(core, buffers, write, max_saved_steps=max_saved_steps,
                         logged=("ys", "step_t", "step_y", "step_h", "step_stop", "states", "dense", "checkpoints"))
    buffer_full = (recording & (out["status"] == ReturnCode.MaxIters) & (out["stats"]["n_steps"] >= saved_steps)
                   & (out["attempts"] < options.max_steps))
    return Trajectory(
        ys=bufs["ys"],
        status=out["status"],
        stats=out["stats"],
        n_steps=out["stats"]["n_steps"],
        step_t=bufs.get("step_t"),
        step_h=bufs.get("step_h"),
        step_stop=bufs.get("step_stop"),
        states=bufs.get("states"),
        dense=bufs.get("dense"),
        h0=h_init,
        checkpoints=bufs.get("checkpoints"),
        checkpoint_every=every,
        buffer_full=jnp.asarray(buffer_full),
        accumulated=bufs.get("accumulated"),
        step_y=bufs.get("step_y"),
        h_next=out["h"],
    )


def integrate_from(
    checkpoint,
    fn,
    solver,
    args,
    *,
    t0,
    stops,
    options,
    until,
    length: int,
    record_states: bool = True,
    record_dense: bool = False,
    error_mask=None,
) -> Segment:
    """Recompute the accepted steps from a checkpoint of :func:`integrate` until ``until`` steps.

    The settings must be those of the run that took the checkpoint (the loop then makes the
    same decisions). Records the time, size and stop index of each step and, as asked, the
    solver state at its start and its dense output, in buffers of ``length`` steps (``until``
    minus the checkpoint's step count must not exceed it).
    """
    loop = _Loop(fn, solver, args, t0=t0, stops=stops, options=options, error_mask=error_mask)
    first = checkpoint["stats"]["n_steps"]
    buffers = dict(
        step_t=jnp.full((length + 1,), jnp.inf).at[0].set(checkpoint["t"]),
        step_h=jnp.zeros((length,)),
        step_stop=jnp.full((length,), -1),
    )
    if record_states:
        buffers["states"] = _write(_buffer(checkpoint["state"], length + 1), 0, checkpoint["state"])
    if record_dense:
        buffers["dense"] = _buffer(loop.traced_advance(checkpoint)[1][1]["dense"], length)

    def write(bufs, r, live, new):
        return _write_steps(bufs, r, r["index"] - first, live & r["ok"])

    running = lambda c: (c["status"] == RUNNING) & (c["stats"]["n_steps"] < until)
    out, bufs = loop.run(checkpoint, buffers, write, running=running, logged=tuple(buffers))
    return Segment(out["stats"]["n_steps"] - first, bufs["step_t"], bufs["step_h"], bufs["step_stop"],
                   bufs.get("states"), bufs.get("dense"))


def dense_eval(solver, trajectory: Trajectory | Segment, t):
    """Evaluate the recorded dense output at time ``t`` (within the span of the recorded steps)."""
    n = jnp.maximum(trajectory.n_steps, 1)
    i = jnp.clip(jnp.searchsorted(trajectory.step_t, t, side="right") - 1, 0, n - 1)
    t_start = trajectory.step_t[i]
    theta = (t - t_start) / trajectory.step_h[i]
    coeffs = jax.tree_util.tree_map(lambda b: b[i], trajectory.dense)
    return solver.interpolate(coeffs, theta)
