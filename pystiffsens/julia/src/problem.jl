# The problem type shared by every solve, gradient and ensemble: the Julia twin of
# `pystiffsens.Problem`.

"""
    StiffProblem(name, rhs, loss, knob, u0, tspan, saveat, p, layout; parts = nothing)

A parameterised initial-value problem `u' = rhs(u, params, t)`, `u(t0) = u0`.

  - `rhs(u, params, t)`: out of place, `params` a NamedTuple of the named parameters;
    it returns through [`state_like`](@ref) so that it runs on CPU vectors and in GPU
    kernels alike.
  - `parts`: `nothing`, or `(stiff, nonstiff)` for a problem given in two parts (the
    Julia twin of `pystiffsens.SplitRHS`), each out of place like `rhs`, with `rhs` their
    sum. An IMEX method (`IMEX_SOLVERS`, src/solvers.jl) gets them as a `SplitODEProblem`
    with `stiff` as `f1`, the implicit part; every other method gets `rhs` (see
    [`odeproblem`](@ref)).
  - `loss(ts, ys, params)`: scalar loss of the states `ys[i]` saved at `ts[i] = saveat[i]`.
  - `knob`: the stiffness knob, a parameter name (`Symbol`), a function
    `(params, s) -> params`, or `nothing`.
  - `saveat`: strictly increasing times in `[t0, t1]`; the integrator steps onto each of
    them. A first time equal to `t0` saves `u0` as the first state (see
    [`saves_start`](@ref)).
  - `p`, `layout`: the parameters as one flat vector and its [`layout`](@ref).
"""
struct StiffProblem{F, L, K, Lay <: NamedTuple, S <: Union{Nothing, Tuple{Any, Any}}}
    name::String
    rhs::F
    loss::L
    knob::K
    u0::Vector{Float64}
    tspan::Tuple{Float64, Float64}
    saveat::Vector{Float64}
    p::Vector{Float64}
    layout::Lay
    parts::S

    function StiffProblem(
            name, rhs::F, loss::L, knob::K, u0, tspan, saveat, p, lay::Lay; parts = nothing
        ) where {F, L, K, Lay}
        t0, t1 = Float64(tspan[1]), Float64(tspan[2])
        t0 < t1 || throw(ArgumentError("tspan = $((t0, t1)) must satisfy t0 < t1"))
        times = collect(Float64, saveat)
        isempty(times) && throw(ArgumentError("saveat must hold at least one time"))
        (issorted(times; lt = <=) && first(times) >= t0 && last(times) <= t1) ||
            throw(ArgumentError("saveat = $times must be strictly increasing in [t0, t1] = [$t0, $t1]"))
        parameter_count(lay) == length(p) ||
            throw(ArgumentError("the layout describes $(parameter_count(lay)) parameter entries but p has $(length(p))"))
        parts === nothing || (parts isa Tuple && length(parts) == 2) ||
            throw(ArgumentError("parts must be nothing or (stiff, nonstiff)"))
        return new{F, L, K, Lay, typeof(parts)}(
            String(name), rhs, loss, knob, collect(Float64, u0), (t0, t1), times, collect(Float64, p), lay, parts
        )
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
    return StiffProblem(
        prob.name, prob.rhs, prob.loss, prob.knob, prob.u0, prob.tspan, prob.saveat, p, prob.layout; parts = prob.parts
    )
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
    SumRHS(stiff, nonstiff)

The right-hand side `stiff(u, p, t) + nonstiff(u, p, t)` of a problem given in two parts:
what every method but an IMEX one solves, as `pystiffsens.SplitRHS` is called. A callable
struct, isbits whenever both parts are, so that it can enter a GPU kernel.
"""
struct SumRHS{A, B}
    stiff::A
    nonstiff::B
end
(s::SumRHS)(u, p, t) = s.stiff(u, p, t) .+ s.nonstiff(u, p, t)

"""
    odeproblem(prob, solver = nothing) -> ODEProblem

The in-place problem of `prob` on CPU vectors for the algorithm named `solver`.

A problem in two parts (`prob.parts`) becomes `SplitODEProblem{true}(stiff, nonstiff, ...)`
for an IMEX method (`solver` in `IMEX_SOLVERS`): SciMLBase's `SplitFunction(f1, f2)` with
`f1 = stiff`, which OrdinaryDiffEq's KenCarp4 solves implicitly and `f2 = nonstiff`
explicitly (`nlsolve_f(f, alg) = f isa SplitFunction && issplit(alg) ? f.f1 : f`,
lib/OrdinaryDiffEqCore/src/integrators/integrator_utils.jl; `f_impl = integrator.f.f1`,
`f2 = integrator.f.f2` in lib/OrdinaryDiffEqSDIRK/src/generic_imex_perform_step.jl;
`issplit(::KenCarp4) = true`, lib/OrdinaryDiffEqSDIRK/src/alg_utils.jl). `SplitODEProblem`
gives the in-place `SplitFunction` its `_func_cache` as a PreallocationTools `DiffCache`
(src/problems/ode_problems.jl, SciMLBase), so the sum can be evaluated on dual numbers too.
Every other method gets the `ODEProblem` of `prob.rhs` (the sum), as on the jax side; one
that cannot take a problem in two parts at all (`SPLIT_UNSUPPORTED`) throws.
"""
function odeproblem(prob::StiffProblem, solver::Union{Nothing, AbstractString} = nothing)
    if prob.parts !== nothing && solver !== nothing
        check_split(solver)
        if solver in IMEX_SOLVERS
            stiff, nonstiff = prob.parts
            return SplitODEProblem{true}(
                InPlaceRHS(RHS(stiff, prob.layout)), InPlaceRHS(RHS(nonstiff, prob.layout)), prob.u0, prob.tspan, prob.p
            )
        end
    end
    return ODEProblem{true}(InPlaceRHS(RHS(prob.rhs, prob.layout)), prob.u0, prob.tspan, prob.p)
end
