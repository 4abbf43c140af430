# Julia-side tests of PyStiffSens (run from the repository root with
# `julia --project=pystiffsens/julia -e 'using Pkg; Pkg.test()'`).
# The backend parity tests live in Python: tests/test_julia_backend.py.
using PyStiffSens
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

@testset "fixed-step solvers need dt" begin
    @test_throws ArgumentError solve_problem(dahlquist(), "ImplicitEuler")
    @test solve_problem(dahlquist(), "ImplicitEuler"; dt = 0.01)["retcode"] == "Success"
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
