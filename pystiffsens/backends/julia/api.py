"""Solve, gradient and stiffness ensembles through PyStiffSens (called by :class:`~.backend.JuliaBackend`).

Arguments arrive resolved and checked (solver objects, resolved
:class:`~pystiffsens.options.Options`), so bad input never starts Julia; a missing Julia
raises :class:`~._runtime.JuliaNotFoundError` at once.

What crosses into Julia is Julia's vocabulary: the solver as its OrdinaryDiffEq constructor
name (``solver.julia``, e.g. ``"ABDF2"``) or, on ``device="cuda"``, its DiffEqGPU kernel
(``solver.julia_gpu``, e.g. ``"GPURodas5P"``); the sensitivity as its SciMLSensitivity type
name; ``dt`` only for fixed steps (``options.dt`` is None exactly when steps are adaptive,
:meth:`~pystiffsens.options.Options.for_method`), which Julia takes as ``adaptive = false``.
"""

from __future__ import annotations

from ...results import GradientResult, Solution
from . import _runtime, convert


def _settings(options, device) -> dict:
    """The keywords of the Julia calls; ``dt`` is None for adaptive steps."""
    step = None if options.dt is None else float(options.dt)
    return dict(rtol=float(options.rtol), atol=float(options.atol), dt=step, max_steps=int(options.max_steps),
                device=device)


def _algorithm(solver, device: str) -> str:
    """The Julia name of ``solver``: its DiffEqGPU kernel on CUDA, its OrdinaryDiffEq algorithm otherwise."""
    return solver.julia_gpu if device == "cuda" else solver.julia


def _julia_problem(jl, args: convert.JuliaProblem):
    """The PyStiffSens.StiffProblem of ``args``.

    Names and shapes go as Python tuples, which juliacall converts to Julia tuples of
    ``String`` and ``Int`` (lists would arrive as wrapped Python objects). A custom
    problem's source is evaluated in a call of its own (``custom_module``), so that the
    functions it defines are callable in the calls that follow (Julia's world age). A
    problem in two parts goes with ``split=True``, and Julia builds it from its parts.
    """
    arrays = (args.y0, args.tspan[0], args.tspan[1], args.saveat, args.param_names, args.param_shapes, args.params)
    if args.source is None:
        return jl.problem_from_arrays(args.name, *arrays, split=args.split)
    module = jl.custom_module(args.source)
    return jl.custom_problem(module, args.name, *arrays, split=args.split)


def solve(problem, solver, options, *, device: str = "cpu") -> Solution:
    """Solve ``problem`` with OrdinaryDiffEq (``device="cuda"``: a DiffEqGPU kernel).

    The states are saved at ``problem.saveat``; a first time equal to ``t0`` gives ``y0``.
    On CUDA the counters are not reported and ``max_steps`` is not enforced (DiffEqGPU
    kernels keep neither).
    """
    args = convert.problem_args(problem)
    jl = _runtime.module_for(device)
    raw = jl.solve_problem(_julia_problem(jl, args), _algorithm(solver, device), **_settings(options, device))
    return convert.to_solution(raw, args, solver.name, device)


def gradient(problem, solver, sensitivity: str, options, *, device: str = "cpu") -> GradientResult:
    """Loss and parameter gradient of ``problem`` with SciMLSensitivity's ``sensitivity`` (a type name)."""
    args = convert.problem_args(problem)
    jl = _runtime.module_for(device)
    raw = jl.gradient_problem(_julia_problem(jl, args), _algorithm(solver, device), sensitivity,
                              **_settings(options, device))
    return convert.to_gradient_result(raw, args, solver.name, sensitivity, device)


def gradient_ensemble(problem, stiffness_values, solver, sensitivity: str, options, *,
                      device: str = "cpu") -> list[GradientResult]:
    """One gradient per stiffness value, run as one Julia ensemble.

    The parameters of each value come from ``problem.set_stiffness``. On CPU the ensemble
    is ``EnsembleThreads`` (Julia starts with one thread per core unless
    ``PYTHON_JULIACALL_THREADS`` says otherwise); on CUDA it is one DiffEqGPU kernel.
    """
    args = convert.problem_args(problem)
    rows = convert.stiffness_params(problem, args, stiffness_values)
    jl = _runtime.module_for(device)
    raws = jl.gradient_ensemble(_julia_problem(jl, args), rows, _algorithm(solver, device), sensitivity,
                                **_settings(options, device))
    return [convert.to_gradient_result(raw, args, solver.name, sensitivity, device) for raw in raws]
