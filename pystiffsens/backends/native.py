"""``backend="jax"``: the native solvers and sensitivities, compiled by XLA, on CPU or CUDA.

Called on concrete values, a solve or gradient runs a compiled program (:mod:`pystiffsens.programs`)
kept per structure: the problem's functions and parameter structure, the solver, the
sensitivity, the static options, the shapes and the device (:class:`Programs`). Its memory
plan is made and checked when it is compiled, and a later call with new parameter values,
initial state, saved times or tolerances traces and plans nothing. Step records start
short and grow only when a solve fills them (:mod:`pystiffsens.memory`).

Called inside a JAX transformation (traced parameters, initial state or saved times),
``solve`` returns the differentiable solve of :mod:`pystiffsens.sensitivity.rules`: the
caller's ``jax.jit`` compiles it and its ``jax.grad`` runs the chosen sensitivity.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _params, _program_cache, _xla, memory, programs, sensitivity, solvers
from .. import device as _device
from ..problem import apply_knob
from ..results import STAT_NAMES, GradientResult, Solution
from ..returncode import ReturnCode
from ..sensitivity.base import WORD
from .base import Backend, BatchResult, Choice


@dataclasses.dataclass
class Inputs:
    """A problem's array arguments, checked: parameter leaves, structure, ``y0``, ``t0``, saved times."""

    leaves: list
    structure: _params.Structure
    y0: Any
    t0: Any
    ts: Any

    @property
    def traced(self) -> bool:
        return any(isinstance(x, jax.core.Tracer) for x in (*self.leaves, self.y0, self.t0, self.ts))

    def args(self, options) -> tuple:
        """The program arguments; the options' leaves as float64 scalars, so every call matches the compiled types."""
        as_f64 = jax.tree_util.tree_map(np.float64, options)
        return (self.leaves, self.y0, self.t0, self.ts, as_f64)


def inputs(problem, params=None, y0=None) -> Inputs:
    """The inputs of ``problem``, with ``params``/``y0`` in place of the problem's own when given.

    New ``params`` must have the structure of the problem's (then the problem's functions,
    checked for that structure when it was built, are not traced again).
    """
    leaves, structure = problem.parameters() if params is None else _params.split(params)
    if params is not None:
        _, own = problem.parameters()
        if structure.treedef != own.treedef or structure.shapes != own.shapes:
            raise ValueError(
                f"params {_params.difference(params, problem.params)} (against problem {problem.label!r}); give "
                "params of the problem's structure, or build a new problem with problem.replace(params=...)."
            )
    if y0 is None:
        y0 = problem.y0
    else:
        y0 = _params.promote(y0, "y0")
        if y0.shape != problem.y0.shape:
            raise ValueError(f"y0 has shape {y0.shape}, but problem {problem.label!r} has {problem.y0.shape}.")
    return Inputs(leaves, structure, y0, np.float64(problem.tspan[0]), problem.saveat)


class Programs:
    """Compiled programs and their memory plans, one per structure, kept for the process.

    A program is compiled on its first call, after its estimated memory is checked against
    the limit (:func:`pystiffsens.memory.check`), and XLA's plan of it is checked before it
    first runs (:func:`pystiffsens.memory.compiled_bytes`); both numbers are kept, and every
    call compares them with the limit in force. The :data:`KEPT` most recently used programs
    are kept (a new ``rhs`` function each call would otherwise keep every program it made).
    Programs of built-in problems are also kept on disk as traced programs
    (:mod:`pystiffsens._program_cache`).
    """

    #: Compiled programs kept in memory, least recently used dropped first.
    KEPT = 256

    def __init__(self):
        self._compiled: collections.OrderedDict = collections.OrderedDict()
        self._shapes: dict = {}

    def shapes(self, spec: programs.Spec, inp: Inputs, saved_steps: int) -> memory.Shapes:
        """Sizes of a solver state and of a step's dense output (by ``jax.eval_shape``, once per structure)."""
        key = (spec.rhs, spec.structure, spec.solver, inp.y0.shape, inp.ts.shape)
        if key not in self._shapes:
            problem, theta, _ = spec.flat(inp.leaves, inp.t0, inp.ts)
            self._shapes[key] = memory.shapes(problem.rhs, spec.solver, inp.y0, theta, inp.ts.shape[0], saved_steps)
        return self._shapes[key]._replace(saved_steps=saved_steps)

    def get(self, kind: str, spec: programs.Spec, build: Callable, args: tuple, device, *, static=(),
            algorithm=None, shapes: memory.Shapes, estimate: int, memory_limit=None, batch: int = 1):
        """The compiled program ``build()`` for ``args``, compiled on first use; memory checked on every use.

        ``kind`` and ``static`` complete the key (what ``build`` depends on besides ``spec``);
        ``estimate`` is the planned memory in bytes of ``algorithm`` (None: a solve's step
        records) for ``shapes``.
        """
        # The parameter shapes are in spec.structure and the options in static; the other arguments'
        # shapes (y0, t0, saved times, a batch's stiffness values) complete the signature.
        key = (kind, spec, static, *(np.shape(a) for i, a in enumerate(args) if i not in (0, 4)), device)
        check = dict(batch=batch, memory_limit=memory_limit, device=device)
        # A plain solve (estimate 0: no records) allocates nothing that grows with the steps.
        if estimate:
            memory.check_bytes(estimate, algorithm, shapes, **check)
        entry = self._compiled.get(key)
        if entry is None:
            with jax.default_device(device):
                compiled = _program_cache.compile_cached(_xla.jit(build()), args, (kind, spec, static), device)
            entry = self._compiled[key] = (compiled, memory.compiled_bytes(compiled))
            if len(self._compiled) > self.KEPT:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        compiled, planned = entry
        if estimate:
            memory.check_bytes(planned, algorithm, shapes, how="(as XLA plans it)", **check)
        return compiled

    def compiled(self) -> list:
        """The compiled programs kept."""
        return [compiled for compiled, _ in self._compiled.values()]

    def clear(self) -> None:
        self._compiled.clear()
        self._shapes.clear()


class JaxBackend(Backend):
    """The native backend (see the module docstring)."""

    name = "jax"

    def __init__(self):
        self.programs = Programs()
        self._fitted: dict = {}  # (kind, spec, options.static, shapes) -> the record length the last call needed

    def _lengths_from_last(self, kind: str, spec, inp: Inputs, options, lengths: tuple[int, ...]):
        """``lengths`` from the one the previous call of this computation needed (a repeated call with similar
        values then runs once instead of growing its records again); and a function to remember the length used."""
        key = (kind, spec, options.static, inp.y0.shape, inp.ts.shape)
        last = self._fitted.get(key)
        start = lengths.index(last) if last in lengths else 0

        def remember(length: int) -> None:
            if len(self._fitted) >= Programs.KEPT:
                self._fitted.clear()
            self._fitted[key] = length

        return lengths[start:], remember

    # -- names and checks
    def solver(self, value):
        return solvers.get(value)

    def solver_names(self) -> list[str]:
        return solvers.names()

    def sensitivity_names(self) -> tuple[list[str], dict[str, str]]:
        return sensitivity.names(), sensitivity.CATALOG.aliases()

    def sensitivity(self, value, problem, solver, options, *, device="cpu", memory_limit=None) -> Choice:
        """Resolve ``value``; None/``"auto"`` chooses as SciMLSensitivity's ``automatic_sensealg_choice``.

        Forward mode when states + parameters <= :data:`~pystiffsens.sensitivity.FORWARD_MODE_LIMIT`,
        an adjoint otherwise. SciMLSensitivity's adjoint there is a continuous one
        (GaussAdjoint) because its discrete adjoint is slow; here the discrete adjoint,
        ReverseDiffAdjoint, is the fastest adjoint and gives the same gradient as forward
        mode, so the choice changes the cost, never the result. When its per-step records
        would not fit the memory limit it is ``ReverseDiffAdjoint(checkpoints=ceil(sqrt(S)))``.
        """
        if not sensitivity.is_auto(value):
            return Choice(sensitivity.get(value))
        n, P = int(problem.y0.shape[0]), problem.parameters()[1].size
        limit = sensitivity.FORWARD_MODE_LIMIT
        if n + P <= limit:
            return Choice(sensitivity.ForwardDiffSensitivity(), f"auto: {n} states + {P} parameters <= {limit}")
        algorithm = sensitivity.ReverseDiffAdjoint()
        rule = f"auto: {n} states + {P} parameters > {limit}"
        if not isinstance(problem.y0, jax.core.Tracer):
            longest = options.max_saved_steps or options.max_steps
            spec = programs.Spec(problem.rhs, problem.parameters()[1], solver)
            shapes = self.programs.shapes(spec, inputs(problem), longest)
            budget, _ = memory.limit(memory_limit, _device.resolve(device))
            if memory.total(algorithm, shapes) > budget:
                algorithm = sensitivity.ReverseDiffAdjoint(checkpoints=memory.suggested_checkpoints(longest))
                rule += ", per-step records over the memory limit"
        return Choice(algorithm, rule)

    def check(self, problem, solver, sensitivity, options, device) -> None:
        _device.resolve(device)

    # -- solve
    def solve(self, problem, solver, options, *, sensitivity=None, params=None, y0=None, save_steps=None,
              device="cpu", memory_limit=None) -> Solution:
        inp = inputs(problem, params, y0)
        dev = _device.resolve(device)
        if inp.traced:
            return self._traced_solve(problem, inp, solver, options, sensitivity, save_steps, device)
        spec = programs.Spec(problem.rhs, inp.structure, solver)
        args = inp.args(options)
        lengths: tuple[int, ...] = (0,)
        if save_steps is None or save_steps:
            lengths = self.record_lengths(spec, inp, options)
        lengths, remember = self._lengths_from_last("solve", spec, inp, options, lengths)
        for saved in lengths:
            shapes = self.programs.shapes(spec, inp, saved)
            need = (saved + 1) * WORD * (shapes.n + 1) if saved else 0  # y and t of each step
            run = self.programs.get("solve", spec, lambda: programs.solve(spec, saved), args, dev,
                                    static=(saved, options.static), shapes=shapes, estimate=need,
                                    memory_limit=memory_limit)
            ys, info, step_t, step_y = run(*args)
            info = np.asarray(info)
            if not info[-1]:  # buffer_full
                break
        remember(saved)
        n = int(info[1])
        return Solution(
            ts=np.asarray(inp.ts), ys=np.asarray(ys), status=ReturnCode(int(info[0])),
            stats={name: int(value) for name, value in zip(STAT_NAMES, info[1:-1])},
            solver=solver.name, backend=self.name, device=device,
            step_ts=None if step_t is None else np.asarray(step_t)[: n + 1],
            step_ys=None if step_y is None else np.asarray(step_y)[: n + 1],
        )

    def record_lengths(self, spec, inp: Inputs, options, *, in_program: bool = False) -> tuple[int, ...]:
        """The record lengths a computation may take: ``max_saved_steps`` when given, else from the first
        automatic length (:func:`pystiffsens.memory.first_saved_steps`) up, every length a rerun may take
        (:func:`pystiffsens.memory.saved_step_lengths`) or, for one program that holds them all
        (``in_program``), :func:`pystiffsens.memory.program_lengths`. An algorithm that records
        nothing (forward mode, BacksolveAdjoint) has one length, which sizes nothing."""
        if spec.algorithm is not None and not spec.algorithm.records:
            return (options.max_steps,)
        if options.max_saved_steps is not None:
            return (options.max_saved_steps,)
        shapes = self.programs.shapes(spec, inp, options.max_steps)
        concrete = not any(isinstance(x, jax.core.Tracer) for x in (inp.ts, inp.t0, options.dt))
        t_span = float(np.asarray(inp.ts)[-1] - inp.t0) if options.dt is not None and concrete else 0.0
        first = memory.first_saved_steps(options.max_steps, max(shapes.state, shapes.dense), t_span=t_span,
                                         dt=options.dt if concrete else None, n_stops=inp.ts.shape[0])
        lengths = memory.program_lengths if in_program else memory.saved_step_lengths
        return lengths(first, options.max_steps)

    def _traced_solve(self, problem, inp: Inputs, solver, options, value, save_steps, device) -> Solution:
        choice = value if isinstance(value, Choice) else self.sensitivity(value, problem, solver, options, device=device)
        spec = programs.Spec(problem.rhs, inp.structure, solver, choice.algorithm)
        lengths = self.record_lengths(spec, inp, options, in_program=True)
        save = (options.max_saved_steps or options.max_steps) if save_steps else 0
        solved = programs.traced_solve(spec, inp.leaves, inp.y0, inp.t0, inp.ts, options, save_steps=save,
                                       record_lengths=lengths)
        return Solution(ts=inp.ts, ys=solved.ys, status=solved.status, stats=solved.stats, solver=solver.name,
                        backend=self.name, device=device, step_ts=solved.step_t, step_ys=solved.step_y)

    # -- gradients
    def gradient(self, problem, solver, sensitivity: Choice, options, *, params=None, device="cpu",
                 memory_limit=None) -> GradientResult:
        inp = inputs(problem, params)
        dev = _device.resolve(device)
        algorithm = sensitivity.algorithm
        spec = programs.Spec(problem.rhs, inp.structure, solver, algorithm, problem.loss_fn)
        args = inp.args(options)
        lengths, remember = self._lengths_from_last("gradient", spec, inp, options,
                                                    self.record_lengths(spec, inp, options))
        for saved in lengths:
            shapes = self.programs.shapes(spec, inp, saved)
            run = self.programs.get("gradient", spec, lambda: programs.packed(programs.gradient(spec, (saved,))),
                                    args, dev, static=(saved, options.static), algorithm=algorithm, shapes=shapes,
                                    estimate=memory.total(algorithm, shapes), memory_limit=memory_limit)
            values, info = run(*args)
            out = programs.unpack(np.asarray(values), np.asarray(info), inp.structure)
            if not out["buffer_full"]:
                break
        remember(saved)
        result = gradient_result(out, inp.structure, problem.params, solver=solver.name, sensitivity=algorithm.name,
                                 backend=self.name, device=device)
        if sensitivity.rule is not None:
            result.extra["sensitivity_choice"] = sensitivity.rule
        return result

    def gradient_batch(self, problem, stiffness, solver, sensitivity: Choice, options, device="cpu"):
        """Compile the vmapped gradients over ``stiffness`` now; lanes whose records fill rerun with longer ones."""
        dev = _device.resolve(device)
        inp = inputs(problem)
        algorithm = sensitivity.algorithm
        spec = programs.Spec(problem.rhs, inp.structure, solver, algorithm, problem.loss_fn, problem.stiffness)
        values = jax.device_put(jnp.asarray(stiffness, dtype=jnp.float64), dev)
        lengths = self.record_lengths(spec, inp, options)
        compile_time: dict[tuple[int, int], float] = {}

        def compiled(saved, lanes):
            shapes = self.programs.shapes(spec, inp, saved)
            args = (*inp.args(options), values[lanes])
            start = time.perf_counter()
            run = self.programs.get(
                "batch", spec, lambda: programs.batch(spec, saved, lambda p, s: apply_knob(spec.knob, p, s)), args,
                dev, static=(saved, options.static), algorithm=algorithm, shapes=shapes,
                estimate=memory.total(algorithm, shapes, len(lanes)), batch=len(lanes),
            )
            compile_time.setdefault((saved, len(lanes)), time.perf_counter() - start)
            return run, args

        everything = np.arange(len(stiffness))
        compiled(lengths[0], everything)

        def run() -> BatchResult:
            lanes, run_time = everything, 0.0
            all_values: np.ndarray | None = None
            all_info: np.ndarray | None = None
            for saved in lengths:
                program, args = compiled(saved, lanes)
                start = time.perf_counter()
                values, info = (np.array(x) for x in jax.block_until_ready(program(*args)))
                run_time += time.perf_counter() - start
                if all_values is None or all_info is None:
                    all_values, all_info = values, info
                else:
                    all_values[lanes], all_info[lanes] = values, info
                lanes = lanes[info[:, 1].astype(bool)]  # buffer_full
                if not len(lanes):
                    break
            assert all_values is not None and all_info is not None
            results = [
                gradient_result(programs.unpack(all_values[i], all_info[i], inp.structure), inp.structure, problem.params,
                                solver=solver.name, sensitivity=algorithm.name, backend=self.name, device=device)
                for i in range(len(stiffness))
            ]
            return BatchResult(results, run_time, sum(compile_time.values()))

        return run


def gradient_result(out: dict, structure: _params.Structure, params, **labels) -> GradientResult:
    """A :class:`GradientResult` from a gradient program's unpacked host output (:func:`pystiffsens.programs.unpack`);
    its gradient ordered as ``params``."""
    return GradientResult(
        loss=float(out["loss"]),
        grad=_params.ordered_like(params, structure.fill(out["grad"])),
        status=ReturnCode(out["status"]),
        stats=out["stats"],
        **labels,
    )
