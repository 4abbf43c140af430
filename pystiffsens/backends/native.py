"""``backend="jax"``: the native solvers and sensitivities, compiled by XLA, on CPU or CUDA.

Called on concrete values, a solve or gradient runs a compiled program (:mod:`pystiffsens.programs`)
kept per structure: the problem's functions and parameter structure, the solver, the
sensitivity, the static options, the shapes and the device (:class:`~.compiled.Programs`).
Its memory plan is made and checked when it is compiled, and a later call with new
parameter values, initial state, saved times or tolerances traces and plans nothing; a
call that repeats one with the same options finds its resolved :class:`~.compiled.Plan`
with one lookup (and, without new parameters or initial state, reuses its checked inputs and
record lengths: :class:`_OwnInputs`). Step records start short and grow only when a solve fills them
(:mod:`pystiffsens.memory`).

Called inside a JAX transformation (traced parameters, initial state or saved times),
``solve`` returns the differentiable solve of :mod:`pystiffsens.sensitivity.rules`: the
caller's ``jax.jit`` compiles it and its ``jax.grad`` runs the chosen sensitivity.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _params, memory, programs, sensitivity, solvers
from .. import device as _device
from ..problem import apply_knob
from ..results import STAT_NAMES, GradientResult, Solution
from ..returncode import ReturnCode
from ..sensitivity.base import WORD
from .base import Backend, BatchResult, Choice
from .compiled import Plan, Programs, as_arguments


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
        """The program arguments (the options' leaves as float64 scalars: :func:`~.compiled.as_arguments`)."""
        return (self.leaves, self.y0, self.t0, self.ts, as_arguments(options))


def inputs(problem, params=None, y0=None) -> Inputs:
    """The inputs of ``problem``, with ``params``/``y0`` in place of the problem's own when given.

    New ``params`` must have the structure of the problem's (then the problem's functions,
    checked for that structure when it was built, are not traced again).
    """
    leaves, structure = problem.parameters() if params is None else _params.split(params, host=True)
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
        y0 = _params.promote(y0, "y0", host=True)
        if y0.shape != problem.y0.shape:
            raise ValueError(f"y0 has shape {y0.shape}, but problem {problem.label!r} has {problem.y0.shape}.")
    return Inputs(leaves, structure, y0, np.float64(problem.tspan[0]), problem.saveat)


class JaxBackend(Backend):
    """The native backend (see the module docstring)."""

    name = "jax"

    def __init__(self):
        self.programs = Programs()

    def _plan(self, kind: str, spec: programs.Spec, inp: Inputs, options, lengths: tuple[int, ...], device,
              build: Callable[[int], Callable], estimate: Callable[[memory.Shapes], int]) -> Plan:
        """The :class:`~.compiled.Plan` of ``kind`` for this structure, options and record ``lengths`` (made once).

        ``build(length)`` makes the program for one record length, ``estimate(shapes)`` its
        memory in bytes (:mod:`pystiffsens.memory`).
        """

        def program(saved: int, args: tuple, memory_limit):
            shapes = self.programs.shapes(spec, inp, saved)
            # The parameter shapes are in spec.structure and the options in static; the shapes of y0 and the
            # saved times complete the signature.
            identity = (kind, spec, (saved, options.static))
            return self.programs.get((*identity, inp.y0.shape, inp.ts.shape, device), identity, lambda: build(saved),
                                     args, device, algorithm=spec.algorithm, shapes=shapes, estimate=estimate(shapes),
                                     memory_limit=memory_limit)

        key = (kind, spec, options, lengths, inp.y0.shape, inp.ts.shape, device)
        return self.programs.plan(key, lambda: Plan(lengths, as_arguments(options), program))

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
        return self.prepare_solve(problem, solver, options, sensitivity=sensitivity, save_steps=save_steps,
                                  device=device, memory_limit=memory_limit)(params, y0)

    def prepare_solve(self, problem, solver, options, *, sensitivity=None, save_steps=None, device="cpu",
                      memory_limit=None) -> Callable[..., Solution]:
        dev = _device.resolve(device)
        own = _OwnInputs(self, problem, programs.Spec(problem.rhs, problem.parameters()[1], solver), options)
        records = save_steps is None or bool(save_steps)

        def solve(params=None, y0=None) -> Solution:
            if params is None and y0 is None and own.inputs is not None:
                spec, inp = own.spec, own.inputs
                lengths = own.lengths() if records else (0,)
            else:
                inp = inputs(problem, params, y0)
                if inp.traced:
                    return self._traced_solve(problem, inp, solver, options, sensitivity, save_steps, device)
                spec = _with_structure(own.spec, inp.structure)
                lengths = self.record_lengths(spec, inp, options) if records else (0,)
            plan = self._plan("solve", spec, inp, options, lengths, dev, lambda saved: programs.solve(spec, saved),
                              _step_record_bytes)
            ys, info, step_t, step_y = plan.run(inp.leaves, inp.y0, inp.t0, inp.ts, memory_limit,
                                                full=lambda out: out[1][-1])  # buffer_full
            info = info.tolist()
            n = info[1]
            return Solution(
                ts=np.asarray(inp.ts), ys=ys, status=ReturnCode(info[0]), stats=dict(zip(STAT_NAMES, info[1:-1])),
                solver=solver.name, backend=self.name, device=device,
                step_ts=None if step_t is None else step_t[: n + 1],
                step_ys=None if step_y is None else step_y[: n + 1],
            )

        return solve

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
        return self.prepare_gradient(problem, solver, sensitivity, options, device=device,
                                     memory_limit=memory_limit)(params)

    def prepare_gradient(self, problem, solver, sensitivity: Choice, options, *, device="cpu",
                         memory_limit=None) -> Callable[..., GradientResult]:
        dev = _device.resolve(device)
        algorithm = sensitivity.algorithm
        own = _OwnInputs(self, problem, programs.Spec(problem.rhs, problem.parameters()[1], solver, algorithm,
                                                      problem.loss_fn), options)
        labels = dict(solver=solver.name, sensitivity=algorithm.name, backend=self.name, device=device)

        def gradient(params=None) -> GradientResult:
            if params is None and own.inputs is not None:
                spec, inp, lengths = own.spec, own.inputs, own.lengths()
            else:
                inp = inputs(problem, params)
                spec = _with_structure(own.spec, inp.structure)
                lengths = self.record_lengths(spec, inp, options)
            plan = self._plan("gradient", spec, inp, options, lengths, dev,
                              lambda saved: programs.packed(programs.gradient(spec, (saved,))),
                              lambda shapes: memory.total(algorithm, shapes))
            values, info = plan.run(inp.leaves, inp.y0, inp.t0, inp.ts, memory_limit,
                                    full=lambda out: out[1][1])  # buffer_full
            result = gradient_result(programs.unpack(values, info, inp.structure), inp.structure, problem.params,
                                     **labels)
            if sensitivity.rule is not None:
                result.extra["sensitivity_choice"] = sensitivity.rule
            return result

        return gradient

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
            identity = ("batch", spec, (saved, options.static))
            build = lambda: programs.batch(spec, saved, lambda p, s: apply_knob(spec.knob, p, s))  # noqa: E731
            run = self.programs.get(
                (*identity, inp.y0.shape, inp.ts.shape, len(lanes), dev), identity, build, args, dev,
                algorithm=algorithm, shapes=shapes, estimate=memory.total(algorithm, shapes, len(lanes)),
                batch=len(lanes),
            )
            compile_time.setdefault((saved, len(lanes)), time.perf_counter() - start)
            return run.compiled, args

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


class _OwnInputs:
    """What a prepared call works out alike on every call without new ``params`` or ``y0``.

    ``spec`` is the call's spec for the problem's own parameter structure. ``inputs`` are the
    problem's own inputs, checked once (None when they are traced: such calls take the traced
    path every time). Their record lengths (:meth:`JaxBackend.record_lengths`) are kept per
    :func:`pystiffsens.memory.sizing`, so a changed setting gives new lengths.
    """

    def __init__(self, backend: JaxBackend, problem, spec: programs.Spec, options):
        own = inputs(problem)
        self.backend, self.spec, self.options = backend, spec, options
        self.inputs = None if own.traced else own
        self._lengths: dict[tuple, tuple[int, ...]] = {}

    def lengths(self) -> tuple[int, ...]:
        sizing = memory.sizing()
        lengths = self._lengths.get(sizing)
        if lengths is None:
            assert self.inputs is not None
            lengths = self._lengths[sizing] = self.backend.record_lengths(self.spec, self.inputs, self.options)
        return lengths


def _with_structure(spec: programs.Spec, structure: _params.Structure) -> programs.Spec:
    """``spec`` for parameters of ``structure`` (itself where the structures are equal)."""
    return spec if structure is spec.structure or structure == spec.structure else dataclasses.replace(
        spec, structure=structure)


def _step_record_bytes(shapes: memory.Shapes) -> int:
    """Bytes of a plain solve's step records: ``y`` and ``t`` of each step (none with records of length 0)."""
    return (shapes.saved_steps + 1) * WORD * (shapes.n + 1) if shapes.saved_steps else 0


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
