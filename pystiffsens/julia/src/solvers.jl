# OrdinaryDiffEq algorithms by constructor name.
#
# The keys are the names of OrdinaryDiffEq's constructors, and they are what Python sends:
# pystiffsens's solver catalog (pystiffsens/solvers/__init__.py) names, for each of its
# methods, its OrdinaryDiffEq counterpart (`solver.julia`), and that name is the key here.
# All are the method of the same name in pystiffsens, except one:
#
#   ABDF2: OrdinaryDiffEq's fixed-leading-coefficient BDF2 (Alberdi Celaya, Anza
#          Aguirrezabala & Chatzipantelidis, Procedia Comput. Sci. 29, 2014), pystiffsens's
#          "BDF2". Its first step is implicit Euler and every later one BDF2, as in
#          pystiffsens's BDF2; with a fixed dt the steps are those of classical BDF2.
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
    "KenCarp4" => () -> KenCarp4(),
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
