"""The method vocabulary of the Julia backend, checked before Julia starts.

The tables mirror ``pystiffsens/julia/src/solvers.jl``, ``.../sensitivities.jl`` and
``.../devices.jl`` (a test compares them with the Julia sources). Solver names are the JAX
backend's; sensitivity names map one to one onto SciMLSensitivity types: the JAX backend's
six plus ``QuadratureAdjoint`` and ``ZygoteAdjoint``, except those in
:data:`UNSUPPORTED_SENSITIVITIES`, which are refused with the reason.
"""

from __future__ import annotations

from .. import _validation

SOLVERS = ("Rodas4", "Rodas5P", "KenCarp4", "FBDF", "ImplicitEuler", "Trapezoid", "BDF2")
#: Methods without an error estimate in pystiffsens: they run with a fixed ``dt`` only.
FIXED_STEP_SOLVERS = ("ImplicitEuler", "Trapezoid", "BDF2")
SENSITIVITIES = (
    "ForwardDiffSensitivity",
    "ForwardSensitivity",
    "ReverseDiffAdjoint",
    "ZygoteAdjoint",
    "BacksolveAdjoint",
    "InterpolatingAdjoint",
    "QuadratureAdjoint",
    "GaussAdjoint",
)
#: Names SciMLSensitivity cannot run with any solver here, with the reason (the same
#: table as ``UNSUPPORTED_SENSITIVITIES`` in ``pystiffsens/julia/src/sensitivities.jl``).
UNSUPPORTED_SENSITIVITIES = {
    "ReverseDiffAdjoint": (
        "SciMLSensitivity's ReverseDiffAdjoint cannot differentiate solvers that build their Jacobians "
        "with ForwardDiff, as every solver here does (marked broken upstream in test/Core2/stiff_adjoints.jl)"
    ),
}
#: The JAX backend's aliases (``pss.sensitivity.ALIASES``).
SENSITIVITY_ALIASES = {"forward": "ForwardDiffSensitivity", "adjoint": "InterpolatingAdjoint"}
DEVICES = ("cpu", "cuda")
#: DiffEqGPU has stiff kernels of these methods only (GPURodas4, GPURodas5P).
GPU_SOLVERS = ("Rodas4", "Rodas5P")
#: Inside a GPU kernel gradients are forward mode (ForwardDiff duals).
GPU_SENSITIVITIES = ("ForwardDiffSensitivity",)


def check_method(solver, sensitivity, dt, device) -> tuple[str, str | None, str]:
    """Canonical ``(solver, sensitivity, device)``; ``ValueError`` for a combination Julia cannot run.

    ``sensitivity`` is ``None`` for a plain solve.
    """
    solver = _validation.choose("solver", solver, SOLVERS)
    if sensitivity is not None:
        sensitivity = _validation.choose("sensitivity", sensitivity, SENSITIVITIES, SENSITIVITY_ALIASES)
    if sensitivity in UNSUPPORTED_SENSITIVITIES:
        supported = ", ".join(s for s in SENSITIVITIES if s not in UNSUPPORTED_SENSITIVITIES)
        raise ValueError(
            f"sensitivity={sensitivity!r} is not supported by backend='julia': "
            f"{UNSUPPORTED_SENSITIVITIES[sensitivity]}. Use backend='jax', or one of {supported}."
        )
    device = _validation.choose("device", device, DEVICES)
    if dt is None and solver in FIXED_STEP_SOLVERS:
        raise ValueError(
            f"solver={solver!r} runs with a fixed step only; pass dt=... or use an adaptive solver "
            f"({', '.join(s for s in SOLVERS if s not in FIXED_STEP_SOLVERS)})."
        )
    if device == "cuda":
        if solver not in GPU_SOLVERS:
            raise ValueError(
                f"solver={solver!r} has no DiffEqGPU kernel; with device='cuda' use one of "
                f"{', '.join(GPU_SOLVERS)}, or device='cpu'."
            )
        if sensitivity is not None and sensitivity not in GPU_SENSITIVITIES:
            raise ValueError(
                f"sensitivity={sensitivity!r} cannot run inside a DiffEqGPU kernel; with device='cuda' use "
                f"{', '.join(GPU_SENSITIVITIES)}, or device='cpu'."
            )
    return solver, sensitivity, device
