# The problem type shared by every solve, gradient and ensemble: the Julia twin of
# `pystiffsens.Problem`.

"""
    StiffProblem(name, rhs, loss, knob, u0, tspan, saveat, p, layout)

A parameterised initial-value problem `u' = rhs(u, params, t)`, `u(t0) = u0`.

  - `rhs(u, params, t)`: out of place, `params` a NamedTuple of the named parameters;
    it returns through [`state_like`](@ref) so that it runs on CPU vectors and in GPU
    kernels alike.
  - `loss(ts, ys, params)`: scalar loss of the states `ys[i]` saved at `ts[i] = saveat[i]`.
  - `knob`: the stiffness knob, a parameter name (`Symbol`), a function
    `(params, s) -> params`, or `nothing`.
  - `saveat`: strictly increasing times in `[t0, t1]`; the integrator steps onto each of
    them. A first time equal to `t0` saves `u0` as the first state (see
    [`saves_start`](@ref)).
  - `p`, `layout`: the parameters as one flat vector and its [`layout`](@ref).
"""
struct StiffProblem{F, L, K, Lay <: NamedTuple}
    name::String
    rhs::F
    loss::L
    knob::K
    u0::Vector{Float64}
    tspan::Tuple{Float64, Float64}
    saveat::Vector{Float64}
    p::Vector{Float64}
    layout::Lay

    function StiffProblem(name, rhs::F, loss::L, knob::K, u0, tspan, saveat, p, lay::Lay) where {F, L, K, Lay}
        t0, t1 = Float64(tspan[1]), Float64(tspan[2])
        t0 < t1 || throw(ArgumentError("tspan = $((t0, t1)) must satisfy t0 < t1"))
        times = collect(Float64, saveat)
        isempty(times) && throw(ArgumentError("saveat must hold at least one time"))
        (issorted(times; lt = <=) && first(times) >= t0 && last(times) <= t1) ||
            throw(ArgumentError("saveat = $times must be strictly increasing in [t0, t1] = [$t0, $t1]"))
        parameter_count(lay) == length(p) ||
            throw(ArgumentError("the layout describes $(parameter_count(lay)) parameter entries but p has $(length(p))"))
        return new{F, L, K, Lay}(String(name), rhs, loss, knob, collect(Float64, u0), (t0, t1), times, collect(Float64, p), lay)
    end
end

"""
    saves_start(prob) -> Bool

Whether `prob.saveat` starts at `t0`, so that the first saved state is `u0`. Every CPU
solve passes this as `save_start` (see [`solve_kwargs`](@ref)); GPU kernels are launched
without `t0` and get `u0` put in front (PyStiffSensCUDAExt).
"""
saves_start(prob::StiffProblem) = first(prob.saveat) == prob.tspan[1]

"""
    saves_end(prob) -> Bool

Whether `prob.saveat` ends at `t1`. Every CPU solve passes this as `save_end` (see
[`solve_kwargs`](@ref)).
"""
saves_end(prob::StiffProblem) = last(prob.saveat) == prob.tspan[2]

"""
    parameters(prob) -> NamedTuple

The named parameters of `prob`.
"""
parameters(prob::StiffProblem) = unflatten(prob.layout, prob.p)

"""
    with_params(prob, p) -> StiffProblem

`prob` with the flat parameter vector `p` (same layout).
"""
function with_params(prob::StiffProblem, p::AbstractVector)
    return StiffProblem(prob.name, prob.rhs, prob.loss, prob.knob, prob.u0, prob.tspan, prob.saveat, p, prob.layout)
end

"""
    with_stiffness(prob, s) -> StiffProblem

`prob` with its stiffness knob set to `s`, as `pystiffsens.Problem.with_stiffness` does.
"""
function with_stiffness(prob::StiffProblem, s::Real)
    prob.knob === nothing &&
        throw(ArgumentError("problem $(repr(prob.name)) has no stiffness knob"))
    params = parameters(prob)
    updated = prob.knob isa Symbol ? merge(params, NamedTuple{(prob.knob,)}((Float64(s),))) : prob.knob(params, s)
    keys(updated) == keys(params) ||
        throw(ArgumentError("the stiffness knob of $(repr(prob.name)) changed the parameter names"))
    return with_params(prob, first(flatten(updated)))
end

"""
    RHS(f, layout)

The SciML right-hand side `(u, p, t) -> f(u, unflatten(layout, p), t)` of a problem: a
callable struct, so that it is isbits whenever `f` is and can enter a GPU kernel.
"""
struct RHS{F, Lay}
    f::F
    layout::Lay
end
(r::RHS)(u, p, t) = r.f(u, unflatten(r.layout, p), t)

"""
    InPlaceRHS(rhs)

The in-place form `(du, u, p, t) -> du .= rhs(u, p, t)` of an [`RHS`](@ref). CPU solves
use it: SciMLSensitivity's `ForwardSensitivity` accepts in-place problems only, and its
adjoints pick their vector-Jacobian products (Enzyme, ReverseDiff) for in-place
functions. GPU kernels take the out-of-place `RHS` itself.
"""
struct InPlaceRHS{R <: RHS}
    rhs::R
end
function (r::InPlaceRHS)(du, u, p, t)
    du .= r.rhs(u, p, t)
    return nothing
end

"""
    odeproblem(prob) -> ODEProblem

The in-place `ODEProblem` of `prob` on CPU vectors.
"""
odeproblem(prob::StiffProblem) = ODEProblem{true}(InPlaceRHS(RHS(prob.rhs, prob.layout)), prob.u0, prob.tspan, prob.p)
