# OrdinaryDiffEq algorithms by constructor name.
#
# The keys are the names of OrdinaryDiffEq's constructors, and they are what Python sends:
# pystiffsens's solver catalog (pystiffsens/solvers/__init__.py) names, for each of its
# methods, its OrdinaryDiffEq counterpart (`solver.julia`), and that name is the key here.
# Since OrdinaryDiffEq v7 each family lives in a sublibrary of its own, imported in
# PyStiffSens.jl (read in the sublibraries' `export` lists, OrdinaryDiffEq.jl `lib/`):
#
#   OrdinaryDiffEqRosenbrock     Rodas4, Rodas5P, Rosenbrock23
#   OrdinaryDiffEqSDIRK          KenCarp4, TRBDF2, Kvaerno5, ImplicitEuler, Trapezoid
#   OrdinaryDiffEqFIRK           RadauIIA5
#   OrdinaryDiffEqBDF            FBDF, ABDF2
#   OrdinaryDiffEqExponentialRK  LawsonEuler, ETDRK4
#
# Every constructor is called with its defaults: ForwardDiff Jacobians
# (`autodiff = AutoForwardDiff()`, an ADTypes object; v7 throws for a Bool), no
# `concrete_jac`, LinearSolve's default linear solver, OrdinaryDiffEq's default step
# controller for the method; the exponential integrators with `krylov = true` (below). All
# are the method of the same name in pystiffsens, except one:
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
# LawsonEuler, ETDRK4 (OrdinaryDiffEqExponentialRK, read at OrdinaryDiffEq.jl b211787).
#   pystiffsens takes the linear part L to be the Jacobian at the start of each step. So does
#   OrdinaryDiffEq with `krylov = true` on a plain ODEProblem: `A = calc_J(...)` (ForwardDiff,
#   `autodiff = AutoForwardDiff()`) each step, and the exponentials as Krylov approximations
#   (`arnoldi!`, `expv!`, `phiv!` of ExponentialUtilities) in a subspace of size
#   `min(m, n)`, `m = 30` (exponential_rk_perform_step.jl, exponential_rk_caches.jl). For up
#   to 30 states the subspace is the whole space and the exponentials are those of the dense
#   Jacobian, as in pystiffsens; above that they are Krylov approximations. The default
#   `krylov = false` caches exp(dt A) for a constant linear operator `A = f.f1.f` of a
#   SplitODEProblem and throws "Caching can only be used with SplitFunction" on a plain
#   ODEProblem (exponential_rk_caches.jl). Both are fixed-step methods (not
#   `OrdinaryDiffEqAdaptiveAlgorithm`s, so `isadaptive` is false and a solve without `dt`
#   throws "Fixed timestep methods require a choice of dt or choosing the tstops",
#   lib/OrdinaryDiffEqCore/src/solve.jl; pystiffsens always passes one) and not
#   dt-changeable (`isdtchangeable(...) = false`, alg_utils.jl): where a save time or `t1`
#   is not a whole number of steps away, the integrator steps past it and moves back onto it
#   by interpolation (`handle_tstop!`, `change_t_via_interpolation!`,
#   lib/OrdinaryDiffEqCore/src/integrators/integrator_utils.jl), where pystiffsens shortens
#   the step. On a problem in two parts they are refused (`SPLIT_UNSUPPORTED`), and with
#   some sensitivities (`UNSUPPORTED_COMBINATIONS` in src/sensitivities.jl).
#
# KenCarp4 on a problem in two parts (`StiffProblem.parts`, pystiffsens's SplitRHS) runs as
#   the additive (IMEX) pair it was built as: a SplitODEProblem with the stiff part as `f1`,
#   solved implicitly, and the non-stiff part as `f2`, explicitly (`IMEX_SOLVERS`; see
#   `odeproblem` in src/problem.jl). Every other method solves the sum, as on the jax side.
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
    "LawsonEuler" => () -> LawsonEuler(krylov = true),
    "ETDRK4" => () -> ETDRK4(krylov = true),
)

"""The algorithms that take a problem in two parts as an IMEX pair (a `SplitODEProblem`, the
stiff part implicit); OrdinaryDiffEq's `issplit` is true for them. The same list as
`IMEX_SOLVERS` in pystiffsens/backends/julia/names.py."""
const IMEX_SOLVERS = ("KenCarp4",)

const EXPONENTIAL_SPLIT =
    "OrdinaryDiffEq's exponential integrators take the f1 of a SplitODEProblem as a constant linear " *
    "operator (A = f.f1.f in exponential_rk_perform_step.jl), while pystiffsens takes L from the Jacobian " *
    "of the stiff part at each step; only on a problem without the split do both take L from the Jacobian " *
    "of the whole right-hand side at each step"

"""Algorithms that cannot run a problem given in two parts, with the reason (the same table as
`SPLIT_UNSUPPORTED` in pystiffsens/backends/julia/names.py)."""
const SPLIT_UNSUPPORTED = Dict{String, String}(
    "LawsonEuler" => EXPONENTIAL_SPLIT,
    "ETDRK4" => EXPONENTIAL_SPLIT,
)

"""
    check_split(solver)

Throw if the algorithm named `solver` cannot run a problem given in two parts
(`SPLIT_UNSUPPORTED`).
"""
function check_split(solver::AbstractString)
    haskey(SPLIT_UNSUPPORTED, solver) && throw(
        ArgumentError(
            "solver $(repr(solver)) cannot run a problem in two parts: $(SPLIT_UNSUPPORTED[solver]); " *
                "give the problem as one right-hand side"
        )
    )
    return nothing
end

"""
    solver_names() -> Vector{String}

The OrdinaryDiffEq algorithms [`solve_problem`](@ref), [`gradient_problem`](@ref) and
[`gradient_ensemble`](@ref) accept on device "cpu", by constructor name.
"""
solver_names() = sort!(collect(keys(SOLVERS)))

"""
    algorithm(name) -> OrdinaryDiffEq algorithm

The OrdinaryDiffEq algorithm whose constructor is called `name` (one of
[`solver_names`](@ref), e.g. "Rodas5P" or "ABDF2"), with its default options
(`krylov = true` for the exponential integrators).
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
