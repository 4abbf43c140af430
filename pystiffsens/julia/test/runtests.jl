# Julia-side tests of PyStiffSens (run from the repository root with
# `julia --project=pystiffsens/julia -e 'using Pkg; Pkg.test()'`).
# The backend parity tests live in Python: tests/test_julia_backend.py.
using PyStiffSens
using SciMLBase: SplitFunction
using Test

@testset "flat parameters round-trip, column-major" begin
    params = (a = 2.0, W = [1.0 2.0; 3.0 4.0; 5.0 6.0], b = [7.0, 8.0])
    p, lay = PyStiffSens.flatten(params)
    @test p == [2.0, 1.0, 3.0, 5.0, 2.0, 4.0, 6.0, 7.0, 8.0]
    q = PyStiffSens.unflatten(lay, p)
    @test q.a == 2.0 && q.W == params.W && q.b == params.b
end

@testset "stiffness knobs match the Python ones" begin
    @test parameters(with_stiffness(dahlquist(), 50.0)).lam == 50.0
    @test parameters(with_stiffness(robertson(), 1.0e8)).k2 == 1.0e8
    @test parameters(with_stiffness(hires(), 2.0)).k[10] == 560.0
    rates = PyStiffSens.POLLUTION_RATES
    @test parameters(with_stiffness(pollution(), 3.0)).k == ifelse.(rates .> 1.0e3, 3 .* rates, rates)
end

@testset "solvers are named by their OrdinaryDiffEq constructors, kernels by DiffEqGPU's" begin
    @test Set(solver_names()) == Set(
        [
            "Rodas4", "Rodas5P", "Rosenbrock23", "KenCarp4", "TRBDF2", "Kvaerno5", "RadauIIA5", "FBDF",
            "ImplicitEuler", "Trapezoid", "ABDF2", "LawsonEuler", "ETDRK4",
        ]
    )
    for name in solver_names()  # each key builds the constructor of its name
        @test nameof(typeof(PyStiffSens.algorithm(name))) == Symbol(name)
    end
    @test PyStiffSens.algorithm("ABDF2") isa PyStiffSens.ABDF2
    # the exponential integrators take the Jacobian each step (see the header of src/solvers.jl)
    @test PyStiffSens.algorithm("LawsonEuler").krylov && PyStiffSens.algorithm("ETDRK4").krylov
    @test_throws ArgumentError PyStiffSens.algorithm("BDF2")  # pystiffsens's name, not OrdinaryDiffEq's
    @test_throws ArgumentError PyStiffSens.algorithm("GPURodas5P")  # a kernel, for device "cuda"
    @test_throws ArgumentError solve_problem(dahlquist(), "GPURodas5P")
    @test PyStiffSens.check_device("cpu", "Rodas5P") === nothing
    @test_throws ArgumentError PyStiffSens.check_device("cuda", "Rodas5P")  # on "cuda": "GPURodas5P"
    @test_throws ArgumentError PyStiffSens.check_device("cuda", "GPURodas5P", "GaussAdjoint")
end

@testset "a dt means fixed steps of dt, no dt the algorithm's adaptive steps" begin
    lam, dt = 10.0, 0.01
    fixed = solve_problem(dahlquist(; lam), "ImplicitEuler"; dt)
    @test fixed["retcode"] == "Success"
    @test only(fixed["ys"]) ≈ (1 / (1 + lam * dt))^100 rtol = 1.0e-6  # 100 implicit Euler steps
    adaptive = solve_problem(dahlquist(; lam), "ImplicitEuler"; rtol = 1.0e-3, atol = 1.0e-8)
    @test adaptive["retcode"] == "Success"
    @test adaptive["stats"]["n_steps"] != fixed["stats"]["n_steps"]
    @test solve_problem(dahlquist(; lam), "ABDF2"; dt)["retcode"] == "Success"
    @test_throws ArgumentError solve_problem(dahlquist(), "Rodas5P"; dt = -0.1)
end

# The methods added with issue 26, in forward and adjoint mode: a check of the wiring (each
# constructor and its sublibrary), not of accuracy.
const ADDED_SOLVERS = ("Rosenbrock23", "TRBDF2", "Kvaerno5", "RadauIIA5")

@testset "Dahlquist loss and gradient with $solver, $sensitivity" for solver in ADDED_SOLVERS,
        sensitivity in ("ForwardDiffSensitivity", "GaussAdjoint")
    lam, T = 10.0, 1.0
    r = gradient_problem(dahlquist(; lam), solver, sensitivity; rtol = 1.0e-8, atol = 1.0e-10)
    @test r["retcode"] == "Success"
    @test r["loss"] ≈ exp(-lam * T) rtol = 1.0e-3
    @test only(r["grad"]) ≈ -T * exp(-lam * T) rtol = 1.0e-3
end

# ZygoteAdjoint is left out: Zygote cannot differentiate OrdinaryDiffEq's mutating
# implicit-method internals.
const CHECKED_SENSITIVITIES = sort!(filter(!=("ZygoteAdjoint"), collect(keys(PyStiffSens.SENSITIVITIES))))

@testset "Dahlquist loss and gradient against exp(-lam T), $sensitivity" for sensitivity in CHECKED_SENSITIVITIES
    lam, T = 10.0, 1.0
    r = gradient_problem(dahlquist(; lam), "Rodas5P", sensitivity; rtol = 1.0e-10, atol = 1.0e-12)
    @test r["retcode"] == "Success"
    @test r["loss"] ≈ exp(-lam * T) rtol = 1.0e-6
    @test only(r["grad"]) ≈ -T * exp(-lam * T) rtol = 1.0e-5
end

# A loss of the first saved state: with `t0` saved in front (BacksolveAdjoint's own
# default), `ys[1]` would be u0 and the gradient zero.
const FIRST_SAVED = PyStiffSens.custom_module("rhs(u, p, t) = state_like(u, -p.lam * u[1])\nloss(ts, ys, p) = ys[1][1]\n")

@testset "ys[i] is the state at saveat[i], $sensitivity" for sensitivity in CHECKED_SENSITIVITIES
    lam, t1 = 10.0, 0.5
    prob = PyStiffSens.custom_problem(FIRST_SAVED, "decay", [1.0], 0.0, 1.0, [t1, 1.0], ("lam",), ((),), [lam])
    r = gradient_problem(prob, "Rodas5P", sensitivity; rtol = 1.0e-10, atol = 1.0e-12)
    @test r["retcode"] == "Success"
    @test r["loss"] ≈ exp(-lam * t1) rtol = 1.0e-6
    @test only(r["grad"]) ≈ -t1 * exp(-lam * t1) rtol = 1.0e-5
end

# A loss of the last saved state, saved before t1: with `t1` saved after it
# (BacksolveAdjoint's own `save_end = true`), `ys[end]` would be u(t1).
const LAST_SAVED = PyStiffSens.custom_module("rhs(u, p, t) = state_like(u, -p.lam * u[1])\nloss(ts, ys, p) = ys[end][1]\n")

@testset "ys[end] is the state at saveat[end] < t1, $sensitivity" for sensitivity in CHECKED_SENSITIVITIES
    lam, t1 = 10.0, 0.5
    prob = PyStiffSens.custom_problem(LAST_SAVED, "decay", [1.0], 0.0, 1.0, [t1], ("lam",), ((),), [lam])
    r = gradient_problem(prob, "Rodas5P", sensitivity; rtol = 1.0e-10, atol = 1.0e-12)
    @test r["retcode"] == "Success"
    @test r["loss"] ≈ exp(-lam * t1) rtol = 1.0e-6
    @test only(r["grad"]) ≈ -t1 * exp(-lam * t1) rtol = 1.0e-5
end

# saveat may start at t0: the first saved state is then u0, for every sensealg (explicit
# `save_start`, see `solve_kwargs`).
const START_SAVED = PyStiffSens.custom_module(
    "rhs(u, p, t) = state_like(u, -p.lam * u[1])\nloss(ts, ys, p) = ys[1][1] + 2 * ys[2][1]\n"
)
decay_from_start(saveat; lam = 10.0) =
    PyStiffSens.custom_problem(START_SAVED, "decay", [1.0], 0.0, 1.0, saveat, ("lam",), ((),), [lam]; knob = :lam)

@testset "saveat starting at t0 gives u0 as the first state, $sensitivity" for sensitivity in CHECKED_SENSITIVITIES
    lam, t1 = 10.0, 0.5
    r = gradient_problem(decay_from_start([0.0, t1, 1.0]; lam), "Rodas5P", sensitivity; rtol = 1.0e-10, atol = 1.0e-12)
    @test r["retcode"] == "Success"
    @test r["loss"] ≈ 1 + 2 * exp(-lam * t1) rtol = 1.0e-6
    @test only(r["grad"]) ≈ -2 * t1 * exp(-lam * t1) rtol = 1.0e-5
end

@testset "saveat starting at t0: solutions, fixed steps, t0 alone, ensembles" begin
    prob = decay_from_start([0.0, 0.5, 1.0])
    for (solver, dt) in (("Rodas5P", nothing), ("ABDF2", 0.01))
        s = solve_problem(prob, solver; dt, rtol = 1.0e-10, atol = 1.0e-12)
        @test s["retcode"] == "Success"
        @test s["ts"] == [0.0, 0.5, 1.0]
        @test s["ys"][1, :] == [1.0]
        @test s["ys"][2, 1] ≈ exp(-5.0) rtol = 5.0e-2  # ABDF2 with dt = 0.01: about 1 %
    end
    alone = solve_problem(decay_from_start([0.0]), "Rodas5P")
    @test alone["retcode"] == "Success" && alone["ts"] == [0.0] && alone["ys"] == reshape([1.0], 1, 1)
    @test_throws ArgumentError decay_from_start([-0.5, 1.0])
    results = sweep(prob, [1.0, 10.0], "KenCarp4", "GaussAdjoint"; rtol = 1.0e-8, atol = 1.0e-10)
    for (lam, r) in zip([1.0, 10.0], results)
        @test r["retcode"] == "Success"
        @test only(r["grad"]) ≈ -2 * 0.5 * exp(-lam * 0.5) rtol = 1.0e-4
    end
end

@testset "ReverseDiffAdjoint is refused with the reason" begin
    @test_throws ArgumentError PyStiffSens.sensitivity_algorithm("ReverseDiffAdjoint")
    @test_throws ArgumentError gradient_problem(dahlquist(), "Rodas5P", "ReverseDiffAdjoint")
end

@testset "an ensemble equals one-at-a-time gradients" begin
    prob = linear_modes()
    results = sweep(prob, [10.0, 1000.0], "KenCarp4", "GaussAdjoint"; rtol = 1.0e-8, atol = 1.0e-10)
    for (s, r) in zip([10.0, 1000.0], results)
        single = gradient_problem(with_stiffness(prob, s), "KenCarp4", "GaussAdjoint"; rtol = 1.0e-8, atol = 1.0e-10)
        @test r["retcode"] == single["retcode"] == "Success"
        @test r["grad"] ≈ single["grad"]
    end
end

# --- problems in two parts and the exponential integrators (issue 26) ---------------

const NEURAL_WEIGHTS = (
    W1 = [0.1 -0.2; 0.05 0.1; -0.1 0.2], b1 = [0.0, 0.1, -0.1], W2 = [0.2 -0.1 0.1; 0.1 0.05 -0.2], b2 = [0.1, -0.1],
)

@testset "a problem in two parts is a SplitODEProblem for KenCarp4 and the sum otherwise" begin
    split = stiff_neural_ode(; NEURAL_WEIGHTS..., split = true)
    plain = stiff_neural_ode(; NEURAL_WEIGHTS...)
    @test plain.parts === nothing && split.parts !== nothing
    imex = PyStiffSens.odeproblem(split, "KenCarp4")
    @test imex.f isa SplitFunction
    @test !(PyStiffSens.odeproblem(split, "Rodas5P").f isa SplitFunction)
    @test !(PyStiffSens.odeproblem(plain, "KenCarp4").f isa SplitFunction)
    u, q, t = [0.3, -0.7], PyStiffSens.parameters(split), 0.2
    stiff, nonstiff = split.parts
    @test stiff(u, q, t) ≈ -[q.lam_slow, q.lam_fast] .* u  # f1, the implicit part, is the linear one
    @test stiff(u, q, t) .+ nonstiff(u, q, t) ≈ split.rhs(u, q, t)
    @test_throws ArgumentError PyStiffSens.odeproblem(split, "LawsonEuler")
    @test_throws ArgumentError solve_problem(split, "ETDRK4"; dt = 0.01)
    for sensitivity in ("ForwardDiffSensitivity", "ForwardSensitivity", "InterpolatingAdjoint", "GaussAdjoint")
        a = gradient_problem(split, "KenCarp4", sensitivity; rtol = 1.0e-9, atol = 1.0e-11)
        b = gradient_problem(plain, "KenCarp4", sensitivity; rtol = 1.0e-9, atol = 1.0e-11)
        @test a["retcode"] == b["retcode"] == "Success"
        @test a["loss"] ≈ b["loss"] rtol = 1.0e-5  # the same ODE, solved IMEX and fully implicit
        @test a["grad"] ≈ b["grad"] rtol = 1.0e-3
    end
    results = sweep(split, [10.0, 100.0], "KenCarp4", "GaussAdjoint"; rtol = 1.0e-8, atol = 1.0e-10)
    @test all(r -> r["retcode"] == "Success", results)
end

const TWO_PARTS = PyStiffSens.custom_module(
    "rhs_stiff(u, p, t) = state_like(u, -p.lam * u[1])\nrhs_nonstiff(u, p, t) = state_like(u, zero(u[1]))\n"
)

@testset "custom source in two parts" begin
    lam, T = 10.0, 1.0
    prob = PyStiffSens.custom_problem(TWO_PARTS, "decay", [1.0], 0.0, T, [T], ("lam",), ((),), [lam]; split = true)
    r = gradient_problem(prob, "KenCarp4", "GaussAdjoint"; rtol = 1.0e-10, atol = 1.0e-12)
    @test r["retcode"] == "Success"
    @test r["loss"] ≈ exp(-lam * T) rtol = 1.0e-6
    @test only(r["grad"]) ≈ -T * exp(-lam * T) rtol = 1.0e-5
    @test_throws ArgumentError PyStiffSens.custom_problem(TWO_PARTS, "decay", [1.0], 0.0, T, [T], ("lam",), ((),), [lam])
    @test_throws ArgumentError PyStiffSens.custom_problem(FIRST_SAVED, "decay", [1.0], 0.0, T, [T], ("lam",), ((),), [lam]; split = true)
end

@testset "$solver with fixed steps is exact on a linear problem, its gradient by ForwardSensitivity" for solver in ("LawsonEuler", "ETDRK4")
    lam, T, dt = 10.0, 1.0, 1 / 64  # L = J exactly, so every step is exact; 64 steps of a binary dt reach T
    s = solve_problem(dahlquist(; lam), solver; dt)
    @test s["retcode"] == "Success" && only(s["ys"]) ≈ exp(-lam * T) rtol = 1.0e-10
    @test_throws ArgumentError solve_problem(dahlquist(; lam), solver)  # fixed steps need a dt
    r = gradient_problem(dahlquist(; lam), solver, "ForwardSensitivity"; dt)
    @test r["retcode"] == "Success"
    @test only(r["grad"]) ≈ -T * exp(-lam * T) rtol = 1.0e-8
    for sensitivity in ("ForwardDiffSensitivity", "GaussAdjoint", "InterpolatingAdjoint", "BacksolveAdjoint", "QuadratureAdjoint")
        @test_throws ArgumentError gradient_problem(dahlquist(; lam), solver, sensitivity; dt)
    end
end
