# OrdinaryDiffEq algorithms by constructor name.
#
# The keys are the names of OrdinaryDiffEq's constructors, and they are what Python sends:
# pystiffsens's solver catalog (pystiffsens/solvers/__init__.py) names, for each of its
# methods, its OrdinaryDiffEq counterpart (`solver.julia`), and that name is the key here.
# Since OrdinaryDiffEq v7 each family lives in a sublibrary of its own, imported in
# PyStiffSens.jl (read in the sublibraries' `export` lists, OrdinaryDiffEq.jl `lib/`):
#
#   OrdinaryDiffEqRosenbrock  Rodas4, Rodas5P, Rosenbrock23
#   OrdinaryDiffEqSDIRK       KenCarp4, TRBDF2, Kvaerno5, ImplicitEuler, Trapezoid
#   OrdinaryDiffEqFIRK        RadauIIA5
#   OrdinaryDiffEqBDF         FBDF, ABDF2
#
# Every constructor is called with its defaults: ForwardDiff Jacobians
# (`autodiff = AutoForwardDiff()`, an ADTypes object; v7 throws for a Bool), no
# `concrete_jac`, LinearSolve's default linear solver, OrdinaryDiffEq's default step
# controller for the method. All are the method of the same name in pystiffsens, except one:
#
#   ABDF2: OrdinaryDiffEq's fixed-leading-coefficient BDF2 (Alberdi Celaya, Anza
#          Aguirrezabala & Chatzipantelidis, Procedia Comput. Sci. 29, 2014), pystiffsens's
#          "BDF2". Its first step is implicit Euler and every later one BDF2, as in
#          pystiffsens's BDF2; with a fixed dt the steps are those of classical BDF2.
#
# Same method, different step sequences: the error estimates and controllers are
# OrdinaryDiffEq's, so adaptive steps differ from pystiffsens's. Rosenbrock23 is Shampine
# & Reichelt's ode23s, a Rosenbrock-W method with a fresh Jacobian every step
# (`max_jac_age = 1`); TRBDF2 and Kvaerno5 filter their error estimate (`smooth_est = true`);
# RadauIIA5 solves its stage equations by simplified Newton in RADAU5's real/complex form.
#
# Methods of pystiffsens's catalog without an entry here (`julia` is nothing there, and
# backend="julia" refuses them in Python before Julia starts):
#
#   LawsonEuler, ETDRK4  (OrdinaryDiffEqExponentialRK). pystiffsens takes the linear part L
#          to be the Jacobian at the start of each step. OrdinaryDiffEq's constructors default
#          to `krylov = false`, which caches exp(hA) for the constant linear operator `A` of a
#          SplitODEProblem and throws "Caching can only be used with SplitFunction" on a plain
#          ODEProblem (exponential_rk_caches.jl). Only with `krylov = true` do they take
#          A = J(u_n) each step on a plain ODEProblem (`calc_J`, exponential_rk_perform_step.jl),
#          through Krylov approximations of the phi-functions (subspace size `m = 30`).
#          Whether pystiffsens's methods should map to that Krylov form or to the split form
#          is left open until pystiffsens has a split-problem API; until then there is no
#          mapping. Not run: whether gradients through the Krylov form work with each sensealg.
#   KenCarp4 on a SplitODEProblem (IMEX: f1 implicit, f2 explicit). "KenCarp4" here solves
#          the whole right-hand side implicitly; the split form waits for pystiffsens's IMEX
#          split API, which would build a SplitODEProblem instead of an ODEProblem.
#
# Fixed or adaptive steps are the caller's choice, not a property of a name here: with a
# `dt` every method takes fixed steps of `dt` (`adaptive = false`), without one it takes
# OrdinaryDiffEq's adaptive steps. OrdinaryDiffEq's ImplicitEuler, Trapezoid and ABDF2
# carry error estimates, so they run adaptively too; pystiffsens treats them as fixed-step
# reference methods and always passes a dt for them (Options.for_method in
# pystiffsens/options.py decides).

const SOLVERS = Dict{String, Function}(
    "Rodas4" => () -> Rodas4(),
    "Rodas5P" => () -> Rodas5P(),
    "Rosenbrock23" => () -> Rosenbrock23(),
    "KenCarp4" => () -> KenCarp4(),
    "TRBDF2" => () -> TRBDF2(),
    "Kvaerno5" => () -> Kvaerno5(),
    "RadauIIA5" => () -> RadauIIA5(),
    "FBDF" => () -> FBDF(),
    "ImplicitEuler" => () -> ImplicitEuler(),
    "Trapezoid" => () -> Trapezoid(),
    "ABDF2" => () -> ABDF2(),
)

"""
    solver_names() -> Vector{String}

The OrdinaryDiffEq algorithms [`solve_problem`](@ref), [`gradient_problem`](@ref) and
[`gradient_ensemble`](@ref) accept on device "cpu", by constructor name.
"""
solver_names() = sort!(collect(keys(SOLVERS)))

"""
    algorithm(name) -> OrdinaryDiffEq algorithm

The OrdinaryDiffEq algorithm whose constructor is called `name` (one of
[`solver_names`](@ref), e.g. "Rodas5P" or "ABDF2"), with its default options.
"""
function algorithm(name::AbstractString)
    haskey(SOLVERS, name) && return SOLVERS[name]()
    hint = startswith(name, "GPU") ? " ($(repr(name)) is a DiffEqGPU kernel: run it with device = \"cuda\")" : ""
    throw(ArgumentError("unknown solver $(repr(name))$hint; valid names: $(join(solver_names(), ", "))"))
end

"""
    check_step(dt)

Throw unless `dt` is `nothing` (adaptive steps) or a positive step (fixed steps of `dt`).
"""
function check_step(dt)
    dt === nothing || dt > 0 ||
        throw(ArgumentError("dt = $dt must be positive (or nothing for adaptive steps)"))
    return nothing
end
