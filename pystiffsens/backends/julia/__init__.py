"""The Julia backend (``backend="julia"``): OrdinaryDiffEq + SciMLSensitivity through juliacall.

Install with ``pip install 'pystiffsens[julia]'`` and a Julia 1.10 or 1.11; the Julia
packages (``pystiffsens/juliapkg.json``: the Julia package PyStiffSens shipped in
``pystiffsens/julia``) are installed by juliacall on first use, and CUDA.jl and DiffEqGPU.jl
on the first ``device="cuda"`` call. Without Julia every call raises
:class:`JuliaNotFoundError` at once, saying what to install.

Methods keep their pystiffsens names here (``solver="BDF2"``) and run as their Julia
counterparts, which the solver catalog names (:mod:`pystiffsens.solvers`): ``solver.julia``,
an OrdinaryDiffEq algorithm (``"ABDF2"`` for ``"BDF2"``), and on ``device="cuda"``
``solver.julia_gpu``, a DiffEqGPU kernel (Rodas4 and Rodas5P only). Sensitivities are
SciMLSensitivity's types of the same names, plus ``QuadratureAdjoint`` and
``ZygoteAdjoint``; ``ReverseDiffAdjoint`` is refused (:mod:`.names`). The exponential
integrators (``LawsonEuler``, ``ETDRK4``: OrdinaryDiffEq's with ``krylov = true``, fixed steps)
run with ForwardSensitivity only (and ZygoteAdjoint, which fails for every solver); the other
pairs are refused with the reason (:data:`.names.UNSUPPORTED_COMBINATIONS`). With
``sensitivity=None`` the choice is SciMLSensitivity's: ForwardDiffSensitivity up to 100
states + parameters, GaussAdjoint above (ForwardDiffSensitivity on ``cuda``), or the first
one that runs the solver where that one cannot.

A problem whose ``rhs`` is a :class:`~pystiffsens.SplitRHS` runs with KenCarp4 as an IMEX
pair (OrdinaryDiffEq's ``SplitODEProblem``: the stiff part implicit, the non-stiff part
explicit) and with every other method as the sum, as on ``backend="jax"``; the exponential
integrators refuse it (:data:`.names.SPLIT_UNSUPPORTED`).

Built-in problems run their Julia twins (``pystiffsens/julia/src/problems.jl``). A
custom problem gives its right-hand side in Julia as ``Problem(..., implementations={"julia": source})``;
its ``params`` must be a dict of named real scalars and arrays. ``source`` defines, at top level::

    rhs(u, p, t)        # out of place; p is a NamedTuple of the named parameters
                        # (scalars as numbers, arrays with their shapes); return the
                        # derivative as state_like(u, du1, du2, ...) or as a vector
    loss(ts, ys, p)     # optional (required if the Problem has a custom loss);
                        # ys[i] is the state at ts[i] = saveat[i] (ys[1] is y0
                        # when saveat starts at t0)

For a problem whose ``rhs`` is a ``SplitRHS(stiff, nonstiff)``, ``source`` defines the two
parts instead of ``rhs`` (an ``rhs`` it also defines is not used; the right-hand side is
their sum, as ``SplitRHS`` is)::

    rhs_stiff(u, p, t)     # the part KenCarp4 treats implicitly (SplitRHS.stiff)
    rhs_nonstiff(u, p, t)  # the part it treats explicitly (SplitRHS.nonstiff)

``state_like`` returns a static vector inside GPU kernels and a ``Vector`` otherwise,
so one definition serves every device and AD backend. See
``examples/julia_backend_custom_rhs.py``.
"""

from ._runtime import JuliaNotFoundError, find_julia
from .backend import JuliaBackend

__all__ = ["JuliaBackend", "JuliaNotFoundError", "find_julia"]
