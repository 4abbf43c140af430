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
fixed steps exactly when it is given a ``dt``. tests/test_julia_backend.py compares the two
sides.
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
