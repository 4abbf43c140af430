# Gradients over many parameter sets (a stiffness sweep) as one ensemble.

"""
    gradient_ensemble(prob, P, solver, sensitivity; rtol = 1e-6, atol = 1e-8, dt = nothing, max_steps = 100_000, device = "cpu") -> Vector{Dict}

One [`gradient_dict`](@ref) per row of the parameter matrix `P` (rows in `prob`'s
layout), with `solver` and `sensitivity` named as in [`gradient_problem`](@ref). On "cpu"
the forward solves run as an `EnsembleProblem` with `EnsembleThreads()` (start Julia with
several threads), each member differentiated in its thread; on "cuda" all rows run in one
DiffEqGPU kernel.
"""
function gradient_ensemble(
        prob::StiffProblem, P::AbstractMatrix, solver::AbstractString, sensitivity::AbstractString;
        rtol = 1.0e-6, atol = 1.0e-8, dt = nothing, max_steps = 100_000, device = "cpu"
    )
    size(P, 2) == length(prob.p) ||
        throw(ArgumentError("P has $(size(P, 2)) columns but the problem has $(length(prob.p)) parameter entries"))
    check_step(dt)
    check_device(device, solver, sensitivity)
    rows = Matrix{Float64}(P)
    device == "cuda" && return gpu_gradient_ensemble(prob, rows, solver; rtol, atol, dt, max_steps)
    members = [with_params(prob, rows[i, :]) for i in axes(rows, 1)]
    alg = algorithm(solver)
    sensealg = sensitivity_algorithm(sensitivity)
    check_combination(solver, sensitivity)
    kwargs = solve_kwargs(prob, rtol, atol, dt, max_steps)
    # each member solves and differentiates a problem of its own: `remake` would share the
    # `_func_cache` of a SplitFunction (src/remake.jl, SciMLBase) between threads
    ensemble = EnsembleProblem(
        odeproblem(prob, solver);
        prob_func = (ode, ctx) -> odeproblem(members[ctx.sim_id], solver),
        output_func = function (sol, ctx)
            member = members[ctx.sim_id]
            return (gradient_from_primal(member, odeproblem(member, solver), sol, alg, sensealg, kwargs), false)
        end,
        safetycopy = false,
    )
    sim = solve(ensemble, alg, EnsembleThreads(); trajectories = length(members), kwargs...)
    return collect(sim.u)
end

"""
    sweep(prob, stiffness, solver, sensitivity; kwargs...) -> Vector{Dict}

[`gradient_ensemble`](@ref) over the stiffness values, set through the problem's knob
([`with_stiffness`](@ref)).
"""
function sweep(prob::StiffProblem, stiffness::AbstractVector, solver::AbstractString, sensitivity::AbstractString; kwargs...)
    P = reduce(vcat, [permutedims(with_stiffness(prob, s).p) for s in stiffness])
    return gradient_ensemble(prob, P, solver, sensitivity; kwargs...)
end
