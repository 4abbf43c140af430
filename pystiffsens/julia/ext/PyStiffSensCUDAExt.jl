"""
    PyStiffSensCUDAExt

`device = "cuda"` for PyStiffSens: DiffEqGPU's `EnsembleGPUKernel(CUDABackend())`, which
compiles the whole solve of every ensemble member into one GPU kernel (states and
parameters as static vectors). Gradients carry ForwardDiff duals, one partial per
parameter entry, through the kernel; the Rosenbrock kernels then build their Jacobians
by finite differences (`autodiff = false`, the setting DiffEqGPU tests with dual
numbers), so the differentiated method is that W-approximation of Rodas4/Rodas5P.

DiffEqGPU kernels keep no cost counters (stats come back empty), have no step budget
(`max_steps` is not enforced) and report only Success or Terminated (a solve that did not
reach every `saveat` time). A gradient counts as successful only when the retcode is
`ReturnCode.Success` and every `saveat` time was reached: `SciMLBase.successful_retcode`
would also accept `Terminated`.

Every launch holds at least two trajectories (see [`kernel_solve`](@ref)).
"""
module PyStiffSensCUDAExt

using CUDA: CUDABackend
using DiffEqGPU: EnsembleGPUKernel, GPURodas4, GPURodas5P
using ForwardDiff: ForwardDiff, Dual, Partials
using PyStiffSens: PyStiffSens, RHS, StiffProblem, gradient_dict, retcode_word, solution_dict, unflatten
using SciMLBase: EnsembleProblem, ODEProblem, ReturnCode, remake, solve
using StaticArrays: SVector

const KERNELS = Dict{String, Function}(
    "Rodas4" => autodiff -> GPURodas4(; autodiff = autodiff),
    "Rodas5P" => autodiff -> GPURodas5P(; autodiff = autodiff),
)

"""Tag of the duals that carry parameter derivatives through the kernel."""
struct GradientTag end

"""Initial step of an adaptive kernel solve: a millionth of the span, which the controller then grows."""
initial_dt(prob::StiffProblem) = 1.0e-6 * (prob.tspan[2] - prob.tspan[1])

function kernel_kwargs(prob::StiffProblem, rtol, atol, dt)
    if dt === nothing
        return (saveat = prob.saveat, reltol = Float64(rtol), abstol = Float64(atol), adaptive = true, dt = initial_dt(prob))
    end
    return (saveat = prob.saveat, adaptive = false, dt = Float64(dt))
end

"""Fewest trajectories per kernel launch: with one, DiffEqGPU's ensemble `__solve` hands the
problem to `EnsembleSerial` with the kernel algorithm, which has no single-problem solve."""
const MIN_TRAJECTORIES = 2

"""
    kernel_solve(prob, u0, psets, solver, autodiff, rtol, atol, dt) -> Vector of solutions

One solution per parameter set in `psets`, all in one `EnsembleGPUKernel` launch. Fewer
than [`MIN_TRAJECTORIES`](@ref) sets are padded with copies of the first, whose
solutions are dropped.
"""
function kernel_solve(prob::StiffProblem, u0, psets, solver, autodiff, rtol, atol, dt)
    n = length(psets)
    launched = vcat(psets, fill(first(psets), max(0, MIN_TRAJECTORIES - n)))
    ode = ODEProblem{false}(RHS(prob.rhs, prob.layout), u0, prob.tspan, first(launched))
    ensemble = EnsembleProblem(ode; prob_func = (ode, ctx) -> remake(ode; p = launched[ctx.sim_id]), safetycopy = false)
    sim = solve(
        ensemble, KERNELS[solver](autodiff), EnsembleGPUKernel(CUDABackend(), 0.0);
        trajectories = length(launched), kernel_kwargs(prob, rtol, atol, dt)...,
    )
    return sim.u[1:n]
end

"""Whether a kernel solution succeeded: retcode Success and every `saveat` time reached."""
function reached_saveat(prob::StiffProblem, sol)
    return sol.retcode == ReturnCode.Success && length(sol.t) == length(prob.saveat)
end

function PyStiffSens.gpu_solve(prob::StiffProblem, solver::AbstractString; rtol, atol, dt, max_steps)
    n, m = length(prob.u0), length(prob.p)
    u0 = SVector{n, Float64}(Tuple(prob.u0))
    p = SVector{m, Float64}(Tuple(prob.p))
    sol = only(kernel_solve(prob, u0, [p], solver, true, rtol, atol, dt))
    return solution_dict(sol, n)
end

function PyStiffSens.gpu_gradient_ensemble(prob::StiffProblem, P::AbstractMatrix, solver::AbstractString; rtol, atol, dt, max_steps)
    n, m = length(prob.u0), size(P, 2)
    D = Dual{GradientTag, Float64, m}
    seed(j) = Partials{m, Float64}(ntuple(k -> Float64(k == j), m))
    u0 = SVector{n, D}(ntuple(i -> D(prob.u0[i], zero(Partials{m, Float64})), n))
    psets = [SVector{m, D}(ntuple(j -> D(P[i, j], seed(j)), m)) for i in axes(P, 1)]
    start = time()
    sols = kernel_solve(prob, u0, psets, solver, false, rtol, atol, dt)
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
