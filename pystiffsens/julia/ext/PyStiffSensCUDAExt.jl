"""
    PyStiffSensCUDAExt

`device = "cuda"` for PyStiffSens: DiffEqGPU's `EnsembleGPUKernel(CUDABackend())`, which
compiles the whole solve of every ensemble member into one GPU kernel (states and
parameters as static vectors). Gradients carry ForwardDiff duals, one partial per
parameter entry, through the kernel; the Rosenbrock kernels then build their Jacobians
by finite differences (`autodiff = false`, the setting DiffEqGPU tests with dual
numbers), so the differentiated method is that W-approximation of Rodas4/Rodas5P.

The solver is named by its kernel, "GPURodas4" or "GPURodas5P" (`KERNELS`, the names
`PyStiffSens.GPU_SOLVERS` accepts and pystiffsens's catalog gives as `solver.julia_gpu`).

DiffEqGPU kernels keep no cost counters (stats come back empty), have no step budget
(`max_steps` is not enforced) and report only Success or Terminated (a solve that did not
reach every `saveat` time). A gradient counts as successful only when the retcode is
`ReturnCode.Success` and every `saveat` time was reached: `SciMLBase.successful_retcode`
would also accept `Terminated`.

A `saveat` that starts at `t0` is launched without `t0` ([`kernel_saveat`](@ref)) and `u0`
is put in front of the saved states afterwards ([`saved_states`](@ref)), as the CPU solves
save it (`save_start`).

Every launch holds at least two trajectories (see [`kernel_solve`](@ref)).
"""
module PyStiffSensCUDAExt

using CUDA: CUDABackend
using DiffEqGPU: EnsembleGPUKernel, GPURodas4, GPURodas5P
using ForwardDiff: ForwardDiff, Dual, Partials
using PyStiffSens: PyStiffSens, RHS, StiffProblem, gradient_dict, retcode_word, saves_start, solution_dict, unflatten
using SciMLBase: EnsembleProblem, ODEProblem, ReturnCode, remake, solve
using StaticArrays: SVector

"""DiffEqGPU kernels by name (`PyStiffSens.GPU_SOLVERS`), built with or without ForwardDiff Jacobians.

`autodiff` is a `Bool` here: DiffEqGPU's kernel constructors take a `Bool` or a `Val`
(`GPURodas4(; autodiff = Val{true}())`, src/ensemblegpukernel/gpukernel_algorithms.jl,
DiffEqGPU 3.17). OrdinaryDiffEq v7's rule that `autodiff` be an ADTypes object
(`_fixup_ad` throws for a `Bool`) applies to OrdinaryDiffEq's constructors, not to these.
"""
const KERNELS = Dict{String, Function}(
    "GPURodas4" => autodiff -> GPURodas4(; autodiff = autodiff),
    "GPURodas5P" => autodiff -> GPURodas5P(; autodiff = autodiff),
)

"""Tag of the duals that carry parameter derivatives through the kernel."""
struct GradientTag end

"""Initial step of an adaptive kernel solve: a millionth of the span, which the controller then grows."""
initial_dt(prob::StiffProblem) = 1.0e-6 * (prob.tspan[2] - prob.tspan[1])

"""
    kernel_saveat(prob) -> Vector{Float64}

The save times a kernel is launched with: `prob.saveat` without a leading `t0`, and `[t1]`
when `t0` is its only time (so that the kernel still integrates the whole span and its
retcode says whether it got there; [`saved_states`](@ref) drops that state again).

DiffEqGPU's kernels would save `u0` for a leading `t0` themselves: `ode_solve_kernel` and
`ode_asolve_kernel` (src/ensemblegpukernel/kernels.jl) store it as the first state and
leave its time at the `t0` that `vectorized_solve`/`vectorized_asolve`
(src/ensemblegpukernel/lowerlevel_solve.jl) fill the times with. But the ensemble
`__solve` (src/solve.jl) cuts each trajectory after its last time different from `t0`
and raises for the whole launch when there is none, as for `saveat = [t0]`. Launching
without `t0` keeps that case out and leaves the `t0` state to this package.
"""
function kernel_saveat(prob::StiffProblem)
    later = saves_start(prob) ? prob.saveat[2:end] : prob.saveat
    return isempty(later) ? [prob.tspan[2]] : later
end

function kernel_kwargs(prob::StiffProblem, rtol, atol, dt)
    saveat = kernel_saveat(prob)
    if dt === nothing
        return (saveat = saveat, reltol = Float64(rtol), abstol = Float64(atol), adaptive = true, dt = initial_dt(prob))
    end
    return (saveat = saveat, adaptive = false, dt = Float64(dt))
end

"""
    saved_states(prob, u0, sol) -> NamedTuple (t, u, retcode, stats)

The times and states of the kernel solution `sol` as `prob.saveat` asks for them: when
`saveat` starts at `t0`, `u0` in front and, where `t0` was its only time, without the
state at `t1` that [`kernel_saveat`](@ref) added. `retcode` is the kernel's; `stats` is
`nothing` (kernels keep no counters).
"""
function saved_states(prob::StiffProblem, u0, sol)
    saves_start(prob) || return (t = collect(sol.t), u = collect(sol.u), retcode = sol.retcode, stats = nothing)
    k = min(length(sol.t), length(prob.saveat) - 1)
    t = vcat(prob.tspan[1], sol.t[1:k])
    u = vcat([u0], sol.u[1:k])
    return (t = t, u = u, retcode = sol.retcode, stats = nothing)
end

"""Fewest trajectories per kernel launch: with one, DiffEqGPU's ensemble `__solve` hands the
problem to `EnsembleSerial` with the kernel algorithm, which has no single-problem solve."""
const MIN_TRAJECTORIES = 2

"""
    kernel_solve(prob, u0, psets, kernel, autodiff, rtol, atol, dt) -> Vector of saved states

One [`saved_states`](@ref) per parameter set in `psets`, all in one `EnsembleGPUKernel`
launch of the kernel named `kernel` (a key of `KERNELS`). Fewer than
[`MIN_TRAJECTORIES`](@ref) sets are padded with copies of the first, whose solutions are
dropped.
"""
function kernel_solve(prob::StiffProblem, u0, psets, kernel, autodiff, rtol, atol, dt)
    n = length(psets)
    launched = vcat(psets, fill(first(psets), max(0, MIN_TRAJECTORIES - n)))
    ode = ODEProblem{false}(RHS(prob.rhs, prob.layout), u0, prob.tspan, first(launched))
    ensemble = EnsembleProblem(ode; prob_func = (ode, ctx) -> remake(ode; p = launched[ctx.sim_id]), safetycopy = false)
    sim = solve(
        ensemble, KERNELS[kernel](autodiff), EnsembleGPUKernel(CUDABackend(), 0.0);
        trajectories = length(launched), kernel_kwargs(prob, rtol, atol, dt)...,
    )
    return [saved_states(prob, u0, sol) for sol in sim.u[1:n]]
end

"""Whether a kernel solution ([`saved_states`](@ref)) succeeded: retcode Success and every `saveat` time reached."""
function reached_saveat(prob::StiffProblem, sol)
    return sol.retcode == ReturnCode.Success && length(sol.t) == length(prob.saveat)
end

function PyStiffSens.gpu_solve(prob::StiffProblem, kernel::AbstractString; rtol, atol, dt, max_steps)
    n, m = length(prob.u0), length(prob.p)
    u0 = SVector{n, Float64}(Tuple(prob.u0))
    p = SVector{m, Float64}(Tuple(prob.p))
    sol = only(kernel_solve(prob, u0, [p], kernel, true, rtol, atol, dt))
    return solution_dict(sol, n)
end

function PyStiffSens.gpu_gradient_ensemble(prob::StiffProblem, P::AbstractMatrix, kernel::AbstractString; rtol, atol, dt, max_steps)
    n, m = length(prob.u0), size(P, 2)
    D = Dual{GradientTag, Float64, m}
    seed(j) = Partials{m, Float64}(ntuple(k -> Float64(k == j), m))
    u0 = SVector{n, D}(ntuple(i -> D(prob.u0[i], zero(Partials{m, Float64})), n))
    psets = [SVector{m, D}(ntuple(j -> D(P[i, j], seed(j)), m)) for i in axes(P, 1)]
    start = time()
    sols = kernel_solve(prob, u0, psets, kernel, false, rtol, atol, dt)
    seconds = (time() - start) / length(psets)
    return [member_gradient(prob, sol, p, seconds) for (sol, p) in zip(sols, psets)]
end

"""The loss of one kernel solution and its gradient, read off the dual partials."""
function member_gradient(prob::StiffProblem, sol, p, seconds)
    m = length(p)
    if !reached_saveat(prob, sol)
        word = sol.retcode == ReturnCode.Success ? "Terminated" : retcode_word(sol)
        return gradient_dict(NaN, nothing, word, Dict{String, Int}(), nothing, seconds, m)
    end
    loss = prob.loss(prob.saveat, sol.u, unflatten(prob.layout, p))
    value = ForwardDiff.value(loss)
    grad = collect(Float64, ForwardDiff.partials(loss))
    finite = isfinite(value) && all(isfinite, grad)
    return gradient_dict(
        finite ? value : NaN, finite ? grad : nothing, finite ? "Success" : "Unstable", Dict{String, Int}(), nothing, seconds, m,
    )
end

end
