# Results as plain dictionaries of strings, numbers and Float64 arrays: what crosses
# back into Python (pystiffsens/backends/julia/convert.py reads exactly these keys).

"""The SciML return code of `sol` as a word, e.g. "Success", "MaxIters"."""
retcode_word(sol) = String(Symbol(sol.retcode))

"""
    stats_dict(sol) -> Dict

Cost counters under pystiffsens' names: accepted and rejected steps, RHS evaluations,
Jacobians and LU factorisations (SciMLBase's DEStats fields naccept, nreject, nf, njacs,
nw). Empty when the solver keeps no counters (DiffEqGPU kernels).
"""
function stats_dict(sol)
    s = sol.stats
    s === nothing && return Dict{String, Int}()
    return Dict{String, Int}(
        "n_steps" => s.naccept, "n_rejected" => s.nreject, "n_f" => s.nf, "n_jac" => s.njacs, "n_lu" => s.nw,
    )
end

"""
    solution_dict(sol, n) -> Dict

"retcode", "ts" (saved times), "ys" (one row per saved time, `n` columns) and "stats".
"""
function solution_dict(sol, n::Integer)
    ys = isempty(sol.u) ? zeros(0, n) : Matrix{Float64}(permutedims(reduce(hcat, sol.u)))
    return Dict{String, Any}(
        "retcode" => retcode_word(sol), "ts" => collect(Float64, sol.t), "ys" => ys, "stats" => stats_dict(sol),
    )
end

"""
    gradient_dict(loss, grad, retcode, stats, error, seconds, n) -> Dict

"retcode", "loss", "grad" (flat, column-major per parameter; NaN when `grad` is
`nothing`), "stats", "error" (the Julia error text or `nothing`) and "gradient_time_s".
"""
function gradient_dict(loss, grad, retcode, stats, error, seconds, n::Integer)
    return Dict{String, Any}(
        "retcode" => retcode,
        "loss" => Float64(loss),
        "grad" => grad === nothing ? fill(NaN, n) : collect(Float64, grad),
        "stats" => stats,
        "error" => error,
        "gradient_time_s" => Float64(seconds),
    )
end
