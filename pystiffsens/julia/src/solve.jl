# Forward solves.

"""
    solve_kwargs(prob, rtol, atol, dt, max_steps) -> NamedTuple

Keyword arguments of every CPU solve: save at `prob.saveat` only and step onto those
times (`tstops`), at most `max_steps` steps. With a `dt` the steps are fixed steps of `dt`
(`adaptive = false`); with `dt = nothing` they are the algorithm's adaptive steps.

`save_start = saves_start(prob)` and `save_end = saves_end(prob)`, true exactly when
`saveat` starts at `t0` and ends at `t1`, so that `sol.u[i]` is the state at `saveat[i]`
for every sensealg. OrdinaryDiffEq saves `t0` only through `save_start`
(`initialize_saveat` in lib/OrdinaryDiffEqCore/src/solve.jl keeps the times after `t0`),
and its own defaults are these same values (`t0 in saveat`, `t1 in saveat`). They must be
explicit because SciMLSensitivity's BacksolveAdjoint passes its own keyword defaults
`save_start = true, save_end = true` to the forward solve and returns what that solve
saved, which would put `u0` in front of `ys` and `u(t1)` after it; the other adjoints
return the forward solution interpolated at `saveat`, and skip the loss term at `t0` when
`save_start = false` with `t0` in `saveat` (`no_start`; `_concrete_solve_adjoint` in
src/concrete_solve.jl).

No `verbose` keyword: DiffEqBase 7 throws an `ArgumentError` for a `Bool` (its
`_process_verbose_param`, src/verbosity.jl), so solves keep DiffEqBase's default
verbosity; a failure is reported by the retcode either way.
"""
function solve_kwargs(prob::StiffProblem, rtol, atol, dt, max_steps)
    common = (
        reltol = Float64(rtol), abstol = Float64(atol), saveat = prob.saveat, tstops = prob.saveat,
        save_start = saves_start(prob), save_end = saves_end(prob), maxiters = Int(max_steps),
    )
    return dt === nothing ? common : merge(common, (dt = Float64(dt), adaptive = false))
end

"""
    solve_problem(prob, solver; rtol = 1e-6, atol = 1e-8, dt = nothing, max_steps = 100_000, device = "cpu") -> Dict

Solve `prob`; see [`solution_dict`](@ref). `solver` is an OrdinaryDiffEq algorithm by
constructor name on "cpu" ([`solver_names`](@ref), e.g. "Rodas5P", "RadauIIA5" or
"ABDF2") and a DiffEqGPU kernel on "cuda"
("GPURodas4", "GPURodas5P"). A `dt` makes the steps fixed steps of `dt`; without one they
are adaptive. A problem in two parts runs as a `SplitODEProblem` for an IMEX method
(KenCarp4) and as the sum for the others (see [`odeproblem`](@ref)).
"""
function solve_problem(
        prob::StiffProblem, solver::AbstractString;
        rtol = 1.0e-6, atol = 1.0e-8, dt = nothing, max_steps = 100_000, device = "cpu"
    )
    check_step(dt)
    check_device(device, solver)
    device == "cuda" && return gpu_solve(prob, solver; rtol, atol, dt, max_steps)
    sol = solve(odeproblem(prob, solver), algorithm(solver); solve_kwargs(prob, rtol, atol, dt, max_steps)...)
    return solution_dict(sol, length(prob.u0))
end
