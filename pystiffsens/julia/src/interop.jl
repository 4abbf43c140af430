# Problems arriving from Python (pystiffsens/backends/julia). Everything crosses the
# language boundary as plain values: strings, floats, flat Float64 vectors and tuples of
# integer shapes. Parameters arrive flattened column-major, the order `vec` uses. A custom
# problem arrives as the Julia source its Python Problem holds in
# `implementations["julia"]`.

"""
    problem_from_arrays(name, u0, t0, t1, saveat, names, shapes, p; split = false) -> StiffProblem

The built-in problem `name` with state `u0`, span `(t0, t1)`, save times `saveat` and
the flat parameter vector `p` laid out as `names` with `shapes`. With `split = true` it
comes in its two parts (`StiffProblem.parts`), as pystiffsens builds it with
`split=True`; only a built-in with parts (`Builtin.parts`) takes that.
"""
function problem_from_arrays(name, u0, t0, t1, saveat, names, shapes, p; split::Bool = false)
    entry = builtin_entry(String(name))
    lay = layout(names, shapes)
    Set(keys(lay)) == Set(entry.param_names) || throw(
        ArgumentError("problem $(repr(name)) takes parameters $(entry.param_names), got $(collect(keys(lay)))")
    )
    split && entry.parts === nothing &&
        throw(ArgumentError("problem $(repr(name)) has no split into a stiff and a non-stiff part"))
    parts = split ? entry.parts : nothing
    return StiffProblem(String(name), entry.rhs, entry.loss, entry.knob, u0, (t0, t1), saveat, p, lay; parts)
end

const CUSTOM_MODULES = Dict{String, Module}()
const CUSTOM_LOCK = ReentrantLock()

"""
    custom_module(source) -> Module

Evaluate the Julia `source` of a custom problem in a fresh module (cached per source).

The source must define `rhs(u, p, t)`, out of place, returning the derivative through
`state_like(u, ...)` (available in the module) or as a vector; `p` is a NamedTuple of
the named parameters. A problem in two parts (a Python `SplitRHS`) defines instead
`rhs_stiff(u, p, t)` and `rhs_nonstiff(u, p, t)`, of the same form, and its right-hand side
is their sum (see [`custom_problem`](@ref)). It may define `loss(ts, ys, p)` (`ys[i]` the
state saved at `ts[i]`); without one the loss is the sum of the final state.

Call it in its own top-level call, before [`custom_problem`](@ref): functions it defines
only become callable from code started after it returned (Julia's world age).
"""
function custom_module(source::AbstractString)
    return lock(CUSTOM_LOCK) do
        get!(CUSTOM_MODULES, String(source)) do
            mod = Module(:PyStiffSensCustomProblem)
            Core.eval(mod, :(const state_like = $state_like))
            Base.include_string(mod, String(source), "implementations[\"julia\"]")
            isdefined(mod, :rhs) || has_parts(mod) || throw(
                ArgumentError(
                    "the Julia source of a custom problem must define `rhs(u, p, t)` " *
                        "(out of place, p a NamedTuple of the parameters), or `rhs_stiff(u, p, t)` and " *
                        "`rhs_nonstiff(u, p, t)` for a problem in two parts"
                )
            )
            mod
        end
    end
end

"""Whether the module of a custom problem defines both parts of a split right-hand side."""
has_parts(mod::Module) = isdefined(mod, :rhs_stiff) && isdefined(mod, :rhs_nonstiff)

"""
    custom_problem(mod, name, u0, t0, t1, saveat, names, shapes, p; knob = nothing, split = false) -> StiffProblem

A problem whose right-hand side (and loss, if defined) come from the module `mod`
returned by [`custom_module`](@ref). With `split = true` the module must define
`rhs_stiff` and `rhs_nonstiff`: they become the problem's parts (`StiffProblem.parts`),
and its `rhs` is their sum ([`SumRHS`](@ref)), which every method but an IMEX one solves,
as `pystiffsens.SplitRHS` does; an `rhs` the module may also define is not used then.
"""
function custom_problem(mod::Module, name, u0, t0, t1, saveat, names, shapes, p; knob = nothing, split::Bool = false)
    loss = isdefined(mod, :loss) ? getfield(mod, :loss) : final_state_sum
    lay = layout(names, shapes)
    if split
        has_parts(mod) || throw(
            ArgumentError(
                "problem $(repr(name)) is split into a stiff and a non-stiff part, so its Julia source must " *
                    "define `rhs_stiff(u, p, t)` and `rhs_nonstiff(u, p, t)`"
            )
        )
        stiff, nonstiff = getfield(mod, :rhs_stiff), getfield(mod, :rhs_nonstiff)
        return StiffProblem(
            String(name), SumRHS(stiff, nonstiff), loss, knob, u0, (t0, t1), saveat, p, lay; parts = (stiff, nonstiff)
        )
    end
    isdefined(mod, :rhs) || throw(ArgumentError("the Julia source of problem $(repr(name)) defines no `rhs(u, p, t)`"))
    return StiffProblem(String(name), getfield(mod, :rhs), loss, knob, u0, (t0, t1), saveat, p, lay)
end
