"""
    PyStiffSens

The Julia backend of pystiffsens: the built-in stiff problems of the Python package,
solved with OrdinaryDiffEq and differentiated with SciMLSensitivity, one problem at a
time or as ensembles over stiffness values (EnsembleThreads on CPU, DiffEqGPU kernels
on CUDA through the PyStiffSensCUDAExt extension).

Python reaches it through `pystiffsens.backends.julia`; Julia users call the same
functions directly, e.g. `gradient_problem(robertson(), "Rodas5P", "GaussAdjoint")`.
Methods are named as their Julia types: solvers by OrdinaryDiffEq constructor
(`solver_names()`: "Rodas4", "Rodas5P", "Rosenbrock23", "KenCarp4", "TRBDF2", "Kvaerno5",
"RadauIIA5", "FBDF", "ImplicitEuler", "Trapezoid", "ABDF2", "LawsonEuler", "ETDRK4"), or on
`device = "cuda"` by
DiffEqGPU kernel ("GPURodas4", "GPURodas5P"); sensitivities by SciMLSensitivity type
("ForwardDiffSensitivity", "GaussAdjoint", ...).
A `dt` keyword means fixed steps of `dt`; without one the steps are adaptive. A problem in
two parts (`stiff_neural_ode(; split = true)`, or custom source defining `rhs_stiff` and
`rhs_nonstiff`) runs as a `SplitODEProblem` with KenCarp4 (IMEX) and as the sum otherwise.
"""
module PyStiffSens

# OrdinaryDiffEq v7: each solver family from its sublibrary (see src/solvers.jl)
using OrdinaryDiffEqBDF: ABDF2, FBDF
using OrdinaryDiffEqExponentialRK: ETDRK4, LawsonEuler
using OrdinaryDiffEqFIRK: RadauIIA5
using OrdinaryDiffEqRosenbrock: Rodas4, Rodas5P, Rosenbrock23
using OrdinaryDiffEqSDIRK: ImplicitEuler, KenCarp4, Kvaerno5, TRBDF2, Trapezoid
using SciMLBase: EnsembleProblem, EnsembleThreads, ODEProblem, ReturnCode, SplitODEProblem, solve
using SciMLSensitivity: BacksolveAdjoint, ForwardDiffSensitivity, ForwardSensitivity, GaussAdjoint,
    InterpolatingAdjoint, QuadratureAdjoint, ZygoteAdjoint
using StaticArrays: SArray, StaticVector, SVector
using Zygote: Zygote

# problems
include("params.jl")
include("problem.jl")
include("problems.jl")
include("interop.jl")
# methods
include("solvers.jl")
include("sensitivities.jl")
include("devices.jl")
# computations
include("results.jl")
include("solve.jl")
include("gradient.jl")
include("ensemble.jl")

export StiffProblem, state_like, parameters, with_params, with_stiffness
export dahlquist, prothero_robinson, linear_modes, robertson, hires, pollution, van_der_pol, stiff_neural_ode,
    builtin_names
export solve_problem, gradient_problem, gradient_ensemble, sweep, solver_names

end
