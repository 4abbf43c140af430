"""``backend="julia"`` behind the backend interface: names and checks in Python, the work in Julia.

Every refusal happens here, before Julia is looked for: a method without a Julia
counterpart, a sensitivity SciMLSensitivity cannot run, a solver and sensitivity (or
solver and split problem) that cannot run together (:func:`_refuse_unsupported`), a method
without a GPU kernel on ``cuda``, a problem the Julia side cannot take
(:func:`.convert.problem_args`). The calls then go through :mod:`.api` with the Julia
names of the resolved objects.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from ... import _validation, sensitivity, solvers
from ...problem import SplitRHS
from ..base import Backend, BatchResult, Choice
from . import api, convert
from .names import (
    DEVICES,
    GPU_SENSITIVITIES,
    JULIA_ONLY,
    SPLIT_UNSUPPORTED,
    UNSUPPORTED_COMBINATIONS,
    UNSUPPORTED_SENSITIVITIES,
    SciMLSensitivity,
    gpu_solvers,
    sensitivities_for,
    sensitivity_names,
)
from .names import solvers as julia_solvers


class JuliaBackend(Backend):
    """OrdinaryDiffEq and SciMLSensitivity through juliacall (:mod:`pystiffsens.backends.julia`).

    Solvers run as their OrdinaryDiffEq counterpart (``solver.julia``; on ``device="cuda"``
    their DiffEqGPU kernel, ``solver.julia_gpu``), sensitivities as the SciMLSensitivity type
    of the same name. Everything is checked here before Julia starts: a method without a
    Julia counterpart, a sensitivity SciMLSensitivity cannot run, a method without a GPU
    kernel on ``cuda``, a problem without Julia source or with parameters that are not a
    dict of named arrays.
    """

    name = "julia"
    devices = DEVICES

    def solver(self, value):
        solver = solvers.get(value)
        if solver.julia is None:
            raise ValueError(
                f"solver={solver.name!r} has no OrdinaryDiffEq counterpart, so backend='julia' cannot run it; "
                f"use one of {self.solver_names()} or backend='jax'."
            )
        return solver

    def solver_names(self) -> list[str]:
        return [solver.name for solver in julia_solvers()]

    def sensitivity_names(self) -> tuple[list[str], dict[str, str]]:
        return sensitivity_names(), sensitivity.CATALOG.aliases()

    def sensitivity(self, value, problem, solver, options, *, device="cpu", memory_limit=None) -> Choice:
        """Resolve ``value`` (a name, alias or algorithm object).

        None/``"auto"`` chooses as SciMLSensitivity's ``automatic_sensealg_choice``
        (``src/concrete_solve.jl``): ForwardDiffSensitivity when states + parameters <= 100,
        GaussAdjoint otherwise (ReverseDiffAdjoint, the native choice above 100, cannot run
        here). On ``device="cuda"`` it is ForwardDiffSensitivity whatever the size: a DiffEqGPU
        kernel runs forward mode only. Where that choice cannot run with ``solver``
        (:data:`~.names.UNSUPPORTED_COMBINATIONS`), it is the first of the sensitivities that
        can (for LawsonEuler and ETDRK4: ForwardSensitivity).
        """
        if sensitivity.is_auto(value):
            n, P = int(problem.y0.shape[0]), problem.parameters()[1].size
            limit = sensitivity.FORWARD_MODE_LIMIT
            if _device(device) == "cuda":
                return Choice(sensitivity.ForwardDiffSensitivity(),
                              "auto: device='cuda' runs forward mode inside the DiffEqGPU kernel")
            if n + P <= limit:
                choice = Choice(sensitivity.ForwardDiffSensitivity(), f"auto: {n} states + {P} parameters <= {limit}")
            else:
                choice = Choice(sensitivity.GaussAdjoint(), f"auto: {n} states + {P} parameters > {limit}")
            return _usable_choice(choice, solver)
        if isinstance(value, SciMLSensitivity):
            return Choice(value)
        if isinstance(value, str):
            name = _validation.choose("sensitivity", value, sensitivity_names() + list(UNSUPPORTED_SENSITIVITIES),
                                      sensitivity.CATALOG.aliases())
            algorithm = SciMLSensitivity(name) if name in JULIA_ONLY else sensitivity.get(name)
        else:
            algorithm = sensitivity.get(value)
        if algorithm.name in UNSUPPORTED_SENSITIVITIES:
            raise ValueError(
                f"sensitivity={algorithm.name!r} is not supported by backend='julia': "
                f"{UNSUPPORTED_SENSITIVITIES[algorithm.name]}. Use backend='jax', or one of "
                f"{', '.join(sensitivity_names())}."
            )
        _refuse_options(algorithm)
        return Choice(algorithm)

    def check(self, problem, solver, sensitivity, options, device) -> None:
        device = _device(device)
        if solver.julia is None:
            self.solver(solver)  # raises, naming the solvers that run here
        _refuse_unsupported(problem, solver, sensitivity)
        convert.problem_args(problem)
        if device != "cuda":
            return
        if solver.julia_gpu is None:
            gpu = [s.name for s in gpu_solvers()]
            raise ValueError(
                f"solver={solver.name!r} has no DiffEqGPU kernel; with device='cuda' use one of "
                f"{', '.join(gpu)}, or device='cpu'."
            )
        if sensitivity is not None and sensitivity.name not in GPU_SENSITIVITIES:
            raise ValueError(
                f"sensitivity={sensitivity.name!r} cannot run inside a DiffEqGPU kernel; with device='cuda' use "
                f"{', '.join(GPU_SENSITIVITIES)}, or device='cpu'."
            )

    def solve(self, problem, solver, options, *, sensitivity=None, params=None, y0=None, save_steps=None,
              device="cpu", memory_limit=None):
        _refuse_overrides(params, y0, save_steps)
        device = _device(device)
        self.check(problem, solver, None, options, device)
        return api.solve(problem, solver, options, device=device)

    def gradient(self, problem, solver, sensitivity: Choice, options, *, params=None, device="cpu",
                 memory_limit=None):
        _refuse_overrides(params, None, None)
        device = _device(device)
        self.check(problem, solver, sensitivity.algorithm, options, device)
        result = api.gradient(problem, solver, sensitivity.algorithm.name, options, device=device)
        if sensitivity.rule is not None:
            result.extra["sensitivity_choice"] = sensitivity.rule
        return result

    def gradient_batch(self, problem, stiffness, solver, sensitivity: Choice, options, device="cpu"):
        """One Julia ensemble over the stiffness values, run when called (its compilation included in the time)."""
        device = _device(device)
        self.check(problem, solver, sensitivity.algorithm, options, device)
        return functools.partial(_ensemble, problem, np.asarray(stiffness, dtype=float), solver,
                                 sensitivity.algorithm.name, options, device)


def _refuse_unsupported(problem, solver, sensitivity) -> None:
    """``ValueError`` for a solver that cannot run with ``problem``'s split or with ``sensitivity``.

    The one place for such pairs: :data:`~.names.SPLIT_UNSUPPORTED` (solvers that cannot take
    a :class:`~pystiffsens.SplitRHS`) and :data:`~.names.UNSUPPORTED_COMBINATIONS` (solver
    and sensitivity pairs SciMLSensitivity cannot run), the tables the Julia side refuses
    with too. A SplitRHS with any other solver runs: KenCarp4 as an IMEX pair
    (``SplitODEProblem``), the rest on the sum, as on backend='jax'.
    """
    julia = solver.julia
    if isinstance(problem.rhs, SplitRHS) and julia in SPLIT_UNSUPPORTED:
        raise ValueError(
            f"solver={solver.name!r} cannot run problem {problem.label!r}, whose rhs is a SplitRHS, on "
            f"backend='julia': {SPLIT_UNSUPPORTED[julia]}. Build the problem without the split (for "
            "stiff_neural_ode: split=False), or use backend='jax'."
        )
    if sensitivity is None or (julia, sensitivity.name) not in UNSUPPORTED_COMBINATIONS:
        return
    raise ValueError(
        f"solver={solver.name!r} with sensitivity={sensitivity.name!r} is not supported by backend='julia': "
        f"{UNSUPPORTED_COMBINATIONS[julia, sensitivity.name]}. With {solver.name} use "
        f"{', '.join(sensitivities_for(julia))}, or backend='jax'."
    )


def _usable_choice(choice: Choice, solver) -> Choice:
    """``choice``, or where it cannot run with ``solver`` the first sensitivity that can, with the rule said."""
    name = choice.algorithm.name
    if (solver.julia, name) not in UNSUPPORTED_COMBINATIONS:
        return choice
    usable = sensitivities_for(solver.julia)[0]
    algorithm = SciMLSensitivity(usable) if usable in JULIA_ONLY else sensitivity.get(usable)
    return Choice(algorithm, f"{choice.rule}, but {name} cannot run {solver.name} on backend='julia': {usable}")


def _refuse_options(algorithm) -> None:
    """``ValueError`` for an algorithm object whose options differ from its defaults.

    Julia is sent the algorithm's name only and runs SciMLSensitivity's type with its own
    defaults; pystiffsens's options (``GaussAdjoint(n_points=...)``,
    ``InterpolatingAdjoint(quadrature_error_control=...)``, ``ReverseDiffAdjoint(checkpoints=...)``)
    are the native backend's and would otherwise be dropped without a word.
    """
    if isinstance(algorithm, SciMLSensitivity):
        return
    defaults = vars(type(algorithm)())
    changed = {name: value for name, value in vars(algorithm).items() if defaults.get(name) != value}
    if changed:
        settings = ", ".join(f"{name}={value!r}" for name, value in changed.items())
        raise ValueError(
            f"sensitivity={algorithm!r} sets {settings}, which backend='julia' cannot pass on: it runs "
            f"SciMLSensitivity's {algorithm.name} with SciMLSensitivity's own defaults. Use "
            f"{type(algorithm).__name__}() or the name {algorithm.name!r}, or backend='jax' for these options."
        )


def _ensemble(problem, stiffness, solver, sensitivity_name, options, device) -> BatchResult:
    start = time.perf_counter()
    results = api.gradient_ensemble(problem, stiffness, solver, sensitivity_name, options, device=device)
    return BatchResult(list(results), time.perf_counter() - start, np.nan)


def _device(device) -> str:
    """``"cpu"`` or ``"cuda"`` (any case), as Julia expects it; ``ValueError`` otherwise."""
    return _validation.choose("device", device, DEVICES)


def _refuse_overrides(params, y0, save_steps) -> None:
    if params is not None or y0 is not None or save_steps:
        raise ValueError(
            "backend='julia' solves the problem as built (params=, y0= and save_steps=True are native-backend "
            "options): build a problem with problem.replace(params=..., y0=...), or use backend='jax'."
        )
