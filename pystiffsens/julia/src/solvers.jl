# Solver names of pystiffsens -> OrdinaryDiffEq algorithms.
#
# The names are those of the JAX backend, and each maps onto the OrdinaryDiffEq method
# of the same name, except BDF2:
#
#   BDF2 -> ABDF2(): OrdinaryDiffEq's fixed-leading-coefficient BDF2 (Alberdi Celaya,
#           Anza Aguirrezabala & Chatzipantelidis, Procedia Comput. Sci. 29, 2014). Its
#           first step is implicit Euler and every later one BDF2, as in the JAX
#           backend's BDF2; with a fixed dt the steps are those of classical BDF2.
#
# ImplicitEuler, Trapezoid and BDF2 have no embedded error estimate in pystiffsens and
# run with a fixed dt only (OrdinaryDiffEq's versions carry an adaptive controller,
# which is switched off: `adaptive = false`). The other methods are adaptive, or fixed
# step when a dt is given.

const SOLVERS = Dict{String, Function}(
    "Rodas4" => () -> Rodas4(),
    "Rodas5P" => () -> Rodas5P(),
    "KenCarp4" => () -> KenCarp4(),
    "FBDF" => () -> FBDF(),
    "ImplicitEuler" => () -> ImplicitEuler(),
    "Trapezoid" => () -> Trapezoid(),
    "BDF2" => () -> ABDF2(),
)

"""Solvers that need a fixed step `dt`."""
const FIXED_STEP_SOLVERS = ("ImplicitEuler", "Trapezoid", "BDF2")

"""
    algorithm(name) -> OrdinaryDiffEq algorithm

The algorithm for the pystiffsens solver `name` (see the table at the top of this file).
"""
function algorithm(name::AbstractString)
    haskey(SOLVERS, name) ||
        throw(ArgumentError("unknown solver $(repr(name)); valid names: $(join(sort!(collect(keys(SOLVERS))), ", "))"))
    return SOLVERS[name]()
end

"""
    check_step(solver, dt)

Throw unless `dt` suits `solver`: a fixed-step method needs a positive dt.
"""
function check_step(solver::AbstractString, dt)
    if dt === nothing
        solver in FIXED_STEP_SOLVERS &&
            throw(ArgumentError("solver $(repr(solver)) runs with a fixed step only; pass dt"))
    elseif !(dt > 0)
        throw(ArgumentError("dt = $dt must be positive (or nothing for adaptive steps)"))
    end
    return nothing
end
