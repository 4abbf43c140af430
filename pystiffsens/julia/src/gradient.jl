# Loss and parameter gradient of one problem.

"""
    gradient_problem(prob, solver, sensitivity; rtol = 1e-6, atol = 1e-8, dt = nothing, max_steps = 100_000, device = "cpu") -> Dict

Loss and gradient of `prob`; see [`gradient_dict`](@ref). `solver` is named as in
[`solve_problem`](@ref) (an OrdinaryDiffEq constructor on "cpu", a DiffEqGPU kernel on
"cuda"); `sensitivity` is a SciMLSensitivity type name (`SENSITIVITIES`, e.g.
"GaussAdjoint"; on "cuda" only "ForwardDiffSensitivity"). A pair SciMLSensitivity cannot
run (`UNSUPPORTED_COMBINATIONS`) throws before solving.
"""
function gradient_problem(
        prob::StiffProblem, solver::AbstractString, sensitivity::AbstractString;
        rtol = 1.0e-6, atol = 1.0e-8, dt = nothing, max_steps = 100_000, device = "cpu"
    )
    check_step(dt)
    check_device(device, solver, sensitivity)
    if device == "cuda"
        return only(gpu_gradient_ensemble(prob, reshape(prob.p, 1, :), solver; rtol, atol, dt, max_steps))
    end
    alg = algorithm(solver)
    sensealg = sensitivity_algorithm(sensitivity)
    check_combination(solver, sensitivity)
    ode = odeproblem(prob, solver)
    kwargs = solve_kwargs(prob, rtol, atol, dt, max_steps)
    primal = solve(ode, alg; kwargs...)
    return gradient_from_primal(prob, ode, primal, alg, sensealg, kwargs)
end

"""
    gradient_from_primal(prob, ode, primal, alg, sensealg, kwargs) -> Dict

The gradient of `prob.loss`, given `ode` (its [`odeproblem`](@ref) for `alg`) and its
forward solution `primal`.

A forward solve whose retcode is not `ReturnCode.Success` gives its retcode and NaN
loss and gradient, without differentiating (not `SciMLBase.successful_retcode`, which
also counts `Terminated` and other early stops as success). Otherwise Zygote differentiates `solve(...; p, sensealg)`, and
SciMLSensitivity's rules run `sensealg`. A non-finite loss or gradient is reported as
"Unstable"; an error inside the differentiation (e.g. a sensealg that cannot handle
the solver) as "Failure" with the error text. The counters are those of `primal`.
"""
function gradient_from_primal(prob::StiffProblem, ode, primal, alg, sensealg, kwargs)
    n = length(prob.p)
    stats = stats_dict(primal)
    primal.retcode == ReturnCode.Success ||
        return gradient_dict(NaN, nothing, retcode_word(primal), stats, nothing, 0.0, n)
    function objective(p)
        sol = solve(ode, alg; p = p, sensealg = sensealg, kwargs...)
        return (loss = prob.loss(prob.saveat, sol.u, unflatten(prob.layout, p)), retcode = sol.retcode)
    end
    start = time()
    result = try
        Zygote.withgradient(objective, prob.p)
    catch err
        err isa InterruptException && rethrow()
        return gradient_dict(NaN, nothing, "Failure", stats, sprint(showerror, err), time() - start, n)
    end
    seconds = time() - start
    result.val.retcode == ReturnCode.Success ||
        return gradient_dict(NaN, nothing, String(Symbol(result.val.retcode)), stats, nothing, seconds, n)
    loss = Float64(result.val.loss)
    grad = result.grad[1] === nothing ? zeros(n) : collect(Float64, result.grad[1])
    finite = isfinite(loss) && all(isfinite, grad)
    return gradient_dict(finite ? loss : NaN, finite ? grad : nothing, finite ? "Success" : "Unstable", stats, nothing, seconds, n)
end
