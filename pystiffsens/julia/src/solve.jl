# Forward solves.

"""
    solve_kwargs(prob, rtol, atol, dt, max_steps) -> NamedTuple

Keyword arguments of every CPU solve: save at `prob.saveat` only and step onto those
times (`tstops`), at most `max_steps` steps. With a `dt` the steps are fixed
(`adaptive = false`).

`save_start = false` keeps `t0` out of the saved states, so `sol.u[i]` is the state at
`saveat[i]` for every sensealg. OrdinaryDiffEq already leaves `t0` out when it is not in
`saveat` (every `StiffProblem`), but SciMLSensitivity's BacksolveAdjoint forwards its own
default `save_start = true` to the forward solve (`_concrete_solve_adjoint` in
src/concrete_solve.jl), which would shift `ys` against `saveat` in the loss.

No `verbose` keyword: DiffEqBase 7 throws an `ArgumentError` for a `Bool` (its
`_process_verbose_param`, src/verbosity.jl), so solves keep DiffEqBase's default
verbosity; a failure is reported by the retcode either way.
"""
function solve_kwargs(prob::StiffProblem, rtol, atol, dt, max_steps)
    common = (
        reltol = Float64(rtol), abstol = Float64(atol), saveat = prob.saveat, tstops = prob.saveat,
        save_start = false, maxiters = Int(max_steps),
    )
    return dt === nothing ? common : merge(common, (dt = Float64(dt), adaptive = false))
end

"""
    solve_problem(prob, solver; rtol = 1e-6, atol = 1e-8, dt = nothing, max_steps = 100_000, device = "cpu") -> Dict

Solve `prob` with the pystiffsens solver `solver`; see [`solution_dict`](@ref).
"""
function solve_problem(
        prob::StiffProblem, solver::AbstractString;
        rtol = 1.0e-6, atol = 1.0e-8, dt = nothing, max_steps = 100_000, device = "cpu"
    )
    check_step(solver, dt)
    check_device(device, solver)
    device == "cuda" && return gpu_solve(prob, solver; rtol, atol, dt, max_steps)
    sol = solve(odeproblem(prob), algorithm(solver); solve_kwargs(prob, rtol, atol, dt, max_steps)...)
    return solution_dict(sol, length(prob.u0))
end
