"""The Julia backend (``backend="julia"``): OrdinaryDiffEq + SciMLSensitivity through juliacall.

Install with ``pip install 'pystiffsens[julia]'`` and a Julia 1.10 or 1.11; the Julia
packages (``pystiffsens/juliapkg.json``: the Julia package PyStiffSens shipped in
``pystiffsens/julia``) are installed by juliacall on first use, and CUDA.jl and DiffEqGPU.jl
on the first ``device="cuda"`` call. Without Julia every call raises
:class:`JuliaNotFoundError` at once, saying what to install.

Built-in problems run their Julia twins (``pystiffsens/julia/src/problems.jl``). A
custom problem gives its right-hand side in Julia as ``Problem(..., julia_rhs=source)``;
``source`` defines, at top level::

    rhs(u, p, t)        # out of place; p is a NamedTuple of the named parameters
                        # (scalars as numbers, arrays with their shapes); return the
                        # derivative as state_like(u, du1, du2, ...) or as a vector
    loss(ts, ys, p)     # optional (required if the Problem has a custom loss);
                        # ys[i] is the state at ts[i] = saveat[i]

``state_like`` returns a static vector inside GPU kernels and a ``Vector`` otherwise,
so one definition serves every device and AD backend. See
``examples/julia_backend_custom_rhs.py``.
"""

from ._runtime import JuliaNotFoundError, find_julia
from .api import gradient, gradient_ensemble, solve
from .names import DEVICES, FIXED_STEP_SOLVERS, GPU_SENSITIVITIES, GPU_SOLVERS, SENSITIVITIES, SOLVERS

__all__ = [
    "JuliaNotFoundError",
    "find_julia",
    "solve",
    "gradient",
    "gradient_ensemble",
    "SOLVERS",
    "FIXED_STEP_SOLVERS",
    "SENSITIVITIES",
    "DEVICES",
    "GPU_SOLVERS",
    "GPU_SENSITIVITIES",
]
