# Forward solves.

"""
    solve_kwargs(prob, rtol, atol, dt, max_steps) -> NamedTuple

Keyword arguments of every CPU solve: save at `prob.saveat` and step onto those times
(`tstops`), at most `max_steps` steps, quiet on failure (the retcode reports it). With a
`dt` the steps are fixed (`adaptive = false`).
"""
function solve_kwargs(prob::StiffProblem, rtol, atol, dt, max_steps)
    common = (
        reltol = Float64(rtol), abstol = Float64(atol), saveat = prob.saveat, tstops = prob.saveat,
        maxiters = Int(max_steps), verbose = false,
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
