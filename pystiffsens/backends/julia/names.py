"""What the Julia backend can run, read without starting Julia.

Solvers are the catalog's (:data:`pystiffsens.solvers.CATALOG`) that name an OrdinaryDiffEq
counterpart (``solver.julia``, e.g. ``"ABDF2"`` for ``"BDF2"``); on ``device="cuda"`` those
that name a DiffEqGPU kernel (``solver.julia_gpu``: ``"GPURodas4"``, ``"GPURodas5P"``).
Python sends those Julia names, and the Julia tables are keyed by them: ``SOLVERS`` in
``pystiffsens/julia/src/solvers.jl``, ``GPU_SOLVERS`` in ``src/devices.jl`` and ``KERNELS``
in ``ext/PyStiffSensCUDAExt.jl``. Sensitivities are SciMLSensitivity's types, whose names
pystiffsens uses on both sides: the catalog's algorithms except those in
:data:`UNSUPPORTED_SENSITIVITIES` (refused with the reason), plus :data:`JULIA_ONLY` ones the
native backend does not have; ``SENSITIVITIES`` in ``src/sensitivities.jl``. Whether steps
are fixed is decided in Python (:meth:`pystiffsens.options.Options.for_method`): Julia takes
fixed steps exactly when it is given a ``dt``. A problem whose ``rhs`` is a
:class:`~pystiffsens.SplitRHS` runs as OrdinaryDiffEq's ``SplitODEProblem`` with the methods in
:data:`IMEX_SOLVERS` and as the sum with the others, except those in
:data:`SPLIT_UNSUPPORTED`, which refuse it. Pairs of a solver and a sensitivity that
SciMLSensitivity cannot run are :data:`UNSUPPORTED_COMBINATIONS`. tests/test_julia_backend.py
compares the two sides.
"""

from __future__ import annotations

import dataclasses

from ... import sensitivity as _sensitivity
from ... import solvers as _solvers

DEVICES = ("cpu", "cuda")
#: SciMLSensitivity algorithms that exist only on the Julia backend.
JULIA_ONLY = ("QuadratureAdjoint", "ZygoteAdjoint")
#: Names SciMLSensitivity cannot run with any solver here, with the reason (the same table as
#: ``UNSUPPORTED_SENSITIVITIES`` in ``pystiffsens/julia/src/sensitivities.jl``).
UNSUPPORTED_SENSITIVITIES = {
    "ReverseDiffAdjoint": (
        "SciMLSensitivity's ReverseDiffAdjoint cannot differentiate solvers that build their Jacobians "
        "with ForwardDiff, as every solver here does (marked broken upstream in test/Core2/stiff_adjoints.jl)"
    ),
}
#: Inside a GPU kernel gradients are forward mode (ForwardDiff duals).
GPU_SENSITIVITIES = ("ForwardDiffSensitivity",)

#: OrdinaryDiffEq algorithms that run a SplitRHS as a ``SplitODEProblem``, the stiff part
#: implicit and the non-stiff part explicit (``IMEX_SOLVERS`` in ``src/solvers.jl``).
IMEX_SOLVERS = ("KenCarp4",)

_EXPONENTIAL = ("LawsonEuler", "ETDRK4")
_EXPONENTIAL_SPLIT = (
    "OrdinaryDiffEq's exponential integrators take the f1 of a SplitODEProblem as a constant linear "
    "operator (A = f.f1.f in exponential_rk_perform_step.jl), while pystiffsens takes L from the Jacobian "
    "of the stiff part at each step; only on a problem without the split do both take L from the Jacobian "
    "of the whole right-hand side at each step"
)
_EXPONENTIAL_DUALS = (
    "OrdinaryDiffEq's exponential integrators (krylov = true) compute their exponentials with "
    "ExponentialUtilities' expv!/phiv!, whose matrix exponential (ExpMethodHigham2005Base) is defined for "
    "BLAS floats only, so the dual numbers of ForwardDiffSensitivity cannot pass through them"
)
_EXPONENTIAL_BACKWARD = (
    "the adjoint's backward solve runs the same algorithm with the same positive dt and adaptive = false, "
    "and OrdinaryDiffEq turns a positive dt towards t0 only for adaptive or dt-changeable methods; "
    "the exponential integrators are neither (isdtchangeable = false), so that solve would step away from t0"
)
#: OrdinaryDiffEq algorithms that cannot run a SplitRHS problem, with the reason (``SPLIT_UNSUPPORTED``
#: in ``src/solvers.jl``).
SPLIT_UNSUPPORTED = {solver: _EXPONENTIAL_SPLIT for solver in _EXPONENTIAL}
#: (OrdinaryDiffEq algorithm, SciMLSensitivity type) pairs that cannot run, with the reason
#: (``UNSUPPORTED_COMBINATIONS`` in ``src/sensitivities.jl``). The sources read are named in
#: pystiffsens/julia/README.md ("What is verified only by reading").
UNSUPPORTED_COMBINATIONS = {
    (solver, sensitivity): reason
    for solver in _EXPONENTIAL
    for sensitivity, reason in (
        ("ForwardDiffSensitivity", _EXPONENTIAL_DUALS),
        ("BacksolveAdjoint", _EXPONENTIAL_BACKWARD),
        ("InterpolatingAdjoint", _EXPONENTIAL_BACKWARD),
        ("QuadratureAdjoint", _EXPONENTIAL_BACKWARD),
        ("GaussAdjoint", _EXPONENTIAL_BACKWARD),
    )
}


@dataclasses.dataclass(frozen=True)
class SciMLSensitivity:
    """A SciMLSensitivity algorithm the native backend does not have (:data:`JULIA_ONLY`)."""

    name: str
    forward_mode: bool = False


def solvers() -> list:
    """The catalog's solvers that have an OrdinaryDiffEq counterpart (``solver.julia``)."""
    return [solver for solver in _solvers.CATALOG if solver.julia is not None]


def gpu_solvers() -> list:
    """The catalog's solvers that have a DiffEqGPU kernel (``solver.julia_gpu``), for ``device="cuda"``."""
    return [solver for solver in solvers() if solver.julia_gpu is not None]


def sensitivity_names() -> list[str]:
    """Names of the sensitivities the Julia backend runs."""
    native = [name for name in _sensitivity.names() if name not in UNSUPPORTED_SENSITIVITIES]
    return native + list(JULIA_ONLY)


def sensitivities_for(julia_solver: str) -> list[str]:
    """Names of the sensitivities the Julia backend runs with the OrdinaryDiffEq algorithm ``julia_solver``."""
    return [name for name in sensitivity_names() if (julia_solver, name) not in UNSUPPORTED_COMBINATIONS]
