# Problems arriving from Python (pystiffsens/backends/julia). Everything crosses the
# language boundary as plain values: strings, floats, flat Float64 vectors and tuples of
# integer shapes. Parameters arrive flattened column-major, the order `vec` uses. A custom
# problem arrives as the Julia source its Python Problem holds in
# `implementations["julia"]`.

"""
    problem_from_arrays(name, u0, t0, t1, saveat, names, shapes, p) -> StiffProblem

The built-in problem `name` with state `u0`, span `(t0, t1)`, save times `saveat` and
the flat parameter vector `p` laid out as `names` with `shapes`.
"""
function problem_from_arrays(name, u0, t0, t1, saveat, names, shapes, p)
    entry = builtin_entry(String(name))
    lay = layout(names, shapes)
    Set(keys(lay)) == Set(entry.param_names) || throw(
        ArgumentError("problem $(repr(name)) takes parameters $(entry.param_names), got $(collect(keys(lay)))")
    )
    return StiffProblem(String(name), entry.rhs, entry.loss, entry.knob, u0, (t0, t1), saveat, p, lay)
end

const CUSTOM_MODULES = Dict{String, Module}()
const CUSTOM_LOCK = ReentrantLock()

"""
    custom_module(source) -> Module

Evaluate the Julia `source` of a custom problem in a fresh module (cached per source).

The source must define `rhs(u, p, t)`, out of place, returning the derivative through
`state_like(u, ...)` (available in the module) or as a vector; `p` is a NamedTuple of
the named parameters. It may define `loss(ts, ys, p)` (`ys[i]` the state saved at
`ts[i]`); without one the loss is the sum of the final state.

Call it in its own top-level call, before [`custom_problem`](@ref): functions it defines
only become callable from code started after it returned (Julia's world age).
"""
function custom_module(source::AbstractString)
    return lock(CUSTOM_LOCK) do
        get!(CUSTOM_MODULES, String(source)) do
            mod = Module(:PyStiffSensCustomProblem)
            Core.eval(mod, :(const state_like = $state_like))
            Base.include_string(mod, String(source), "implementations[\"julia\"]")
            isdefined(mod, :rhs) || throw(
                ArgumentError(
                    "the Julia source of a custom problem must define `rhs(u, p, t)` " *
                        "(out of place, p a NamedTuple of the parameters)"
                )
            )
            mod
        end
    end
end

"""
    custom_problem(mod, name, u0, t0, t1, saveat, names, shapes, p; knob = nothing) -> StiffProblem

A problem whose right-hand side (and loss, if defined) come from the module `mod`
returned by [`custom_module`](@ref).
"""
function custom_problem(mod::Module, name, u0, t0, t1, saveat, names, shapes, p; knob = nothing)
    loss = isdefined(mod, :loss) ? getfield(mod, :loss) : final_state_sum
    return StiffProblem(String(name), getfield(mod, :rhs), loss, knob, u0, (t0, t1), saveat, p, layout(names, shapes))
end
