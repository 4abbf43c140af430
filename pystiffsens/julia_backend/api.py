"""``backend="julia"``: solve, gradient and stiffness ensembles through PyStiffSens.

Every argument is checked in Python first, so bad input raises ``ValueError`` without
starting Julia; a missing Julia raises :class:`~._runtime.JuliaNotFoundError` at once.
"""

from __future__ import annotations

from .. import _validation, problems
from ..problem import Problem
from ..results import GradientResult, Solution
from . import _runtime, convert
from .names import check_method


def _problem(problem) -> Problem:
    return problems.get(problem) if isinstance(problem, str) else problem


def _check_settings(problem: Problem, rtol, atol, dt, max_steps) -> None:
    _validation.check_tolerances(rtol, atol)
    _validation.check_dt(dt, problem.tspan)
    _validation.check_max_steps(max_steps)


def _settings(rtol, atol, dt, max_steps, device) -> dict:
    step = None if dt is None else float(dt)
    return dict(rtol=float(rtol), atol=float(atol), dt=step, max_steps=int(max_steps), device=device)


def _julia_problem(jl, args: convert.JuliaProblem):
    """The PyStiffSens.StiffProblem of ``args``.

    Names and shapes go as Python tuples, which juliacall converts to Julia tuples of
    ``String`` and ``Int`` (lists would arrive as wrapped Python objects). A custom
    problem's source is evaluated in a call of its own (``custom_module``), so that the
    functions it defines are callable in the calls that follow (Julia's world age).
    """
    arrays = (args.y0, args.tspan[0], args.tspan[1], args.saveat, args.param_names, args.param_shapes, args.params)
    if args.source is None:
        return jl.problem_from_arrays(args.name, *arrays)
    module = jl.custom_module(args.source)
    return jl.custom_problem(module, args.name, *arrays)


def solve(
    problem,
    solver: str = "Rodas5P",
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 100_000,
    saveat=None,
    device: str = "cpu",
) -> Solution:
    """Solve ``problem`` with OrdinaryDiffEq (``device="cuda"``: a DiffEqGPU kernel).

    ``saveat`` overrides ``problem.saveat``. On CUDA the counters are not reported and
    ``max_steps`` is not enforced (DiffEqGPU kernels keep neither).
    """
    problem = _problem(problem)
    solver, _, device = check_method(solver, None, dt, device)
    _check_settings(problem, rtol, atol, dt, max_steps)
    if saveat is not None:
        problem = problem.replace(saveat=saveat)
    args = convert.problem_args(problem)
    jl = _runtime.module_for(device)
    raw = jl.solve_problem(_julia_problem(jl, args), solver, **_settings(rtol, atol, dt, max_steps, device))
    return convert.to_solution(raw, args, solver, device)


def gradient(
    problem,
    solver: str = "Rodas5P",
    sensitivity: str = "ForwardDiffSensitivity",
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 100_000,
    device: str = "cpu",
) -> GradientResult:
    """Loss and parameter gradient of ``problem`` with SciMLSensitivity's ``sensitivity``."""
    problem = _problem(problem)
    solver, sensitivity, device = check_method(solver, sensitivity, dt, device)
    _check_settings(problem, rtol, atol, dt, max_steps)
    args = convert.problem_args(problem)
    jl = _runtime.module_for(device)
    raw = jl.gradient_problem(
        _julia_problem(jl, args), solver, sensitivity, **_settings(rtol, atol, dt, max_steps, device)
    )
    return convert.to_gradient_result(raw, args, solver, sensitivity, device)


def gradient_ensemble(
    problem,
    stiffness_values,
    solver: str = "Rodas5P",
    sensitivity: str = "ForwardDiffSensitivity",
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 100_000,
    device: str = "cpu",
) -> list[GradientResult]:
    """One gradient per stiffness value, run as one Julia ensemble.

    The parameters of each value come from ``problem.set_stiffness``. On CPU the ensemble
    is ``EnsembleThreads`` (Julia starts with one thread per core unless
    ``PYTHON_JULIACALL_THREADS`` says otherwise); on CUDA it is one DiffEqGPU kernel.
    """
    problem = _problem(problem)
    solver, sensitivity, device = check_method(solver, sensitivity, dt, device)
    _check_settings(problem, rtol, atol, dt, max_steps)
    args = convert.problem_args(problem)
    rows = convert.stiffness_params(problem, args, stiffness_values)
    jl = _runtime.module_for(device)
    raws = jl.gradient_ensemble(
        _julia_problem(jl, args), rows, solver, sensitivity, **_settings(rtol, atol, dt, max_steps, device)
    )
    return [convert.to_gradient_result(raw, args, solver, sensitivity, device) for raw in raws]
