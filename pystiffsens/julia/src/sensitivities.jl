# SciMLSensitivity sensealgs by type name (the names pystiffsens uses too, and sends),
# each with SciMLSensitivity's defaults (Ma et al., "A comparison of automatic differentiation and
# continuous sensitivity analysis for derivatives of differential equation solutions",
# IEEE HPEC 2021; SciMLSensitivity's "Choosing a sensitivity algorithm" page).
#
# The gradient is taken by Zygote over `solve(...; sensealg)`; SciMLSensitivity's
# ChainRules then run the chosen method:
#
#   ForwardDiffSensitivity  discretise-then-differentiate in forward mode (ForwardDiff duals)
#   ForwardSensitivity      continuous forward sensitivity equations
#   ZygoteAdjoint           discrete adjoint: Zygote through the solver. Zygote cannot
#                           differentiate mutation, which the in-place CPU problems and
#                           OrdinaryDiffEq's implicit methods use, so it fails here; the
#                           failure comes back as retcode Failure with the Julia error
#   BacksolveAdjoint        continuous adjoint, state re-integrated backwards
#   InterpolatingAdjoint    continuous adjoint, state from the forward interpolant
#   QuadratureAdjoint       continuous adjoint, parameter integral by quadrature
#   GaussAdjoint            continuous adjoint, parameter integral by Gauss quadrature
#                           accumulated during the backward solve
#
# ReverseDiffAdjoint (a ReverseDiff tape through the solver) is not offered: every solver
# here is implicit and builds its Jacobian with ForwardDiff, and SciMLSensitivity marks
# ReverseDiffAdjoint broken for exactly those solvers (`@test_broken` under
# `SciMLBase.forwarddiffs_model(solver)` in test/Core2/stiff_adjoints.jl). Asking for it
# throws the reason below instead of failing deep inside the tape.

const SENSITIVITIES = Dict{String, Function}(
    "ForwardDiffSensitivity" => () -> ForwardDiffSensitivity(),
    "ForwardSensitivity" => () -> ForwardSensitivity(),
    "ZygoteAdjoint" => () -> ZygoteAdjoint(),
    "BacksolveAdjoint" => () -> BacksolveAdjoint(),
    "InterpolatingAdjoint" => () -> InterpolatingAdjoint(),
    "QuadratureAdjoint" => () -> QuadratureAdjoint(),
    "GaussAdjoint" => () -> GaussAdjoint(),
)

"""SciMLSensitivity sensealgs that cannot differentiate the solvers here, with the reason
(the same table as `UNSUPPORTED_SENSITIVITIES` in pystiffsens/backends/julia/names.py)."""
const UNSUPPORTED_SENSITIVITIES = Dict{String, String}(
    "ReverseDiffAdjoint" =>
        "SciMLSensitivity's ReverseDiffAdjoint cannot differentiate solvers that build their Jacobians " *
        "with ForwardDiff, as every solver here does (marked broken upstream in test/Core2/stiff_adjoints.jl)",
)

const EXPONENTIAL_DUALS =
    "OrdinaryDiffEq's exponential integrators (krylov = true) compute their exponentials with " *
    "ExponentialUtilities' expv!/phiv!, whose matrix exponential (ExpMethodHigham2005Base) is defined for " *
    "BLAS floats only, so the dual numbers of ForwardDiffSensitivity cannot pass through them"
const EXPONENTIAL_BACKWARD =
    "the adjoint's backward solve runs the same algorithm with the same positive dt and adaptive = false, " *
    "and OrdinaryDiffEq turns a positive dt towards t0 only for adaptive or dt-changeable methods; " *
    "the exponential integrators are neither (isdtchangeable = false), so that solve would step away from t0"

"""Sensitivities SciMLSensitivity cannot run with a particular solver, keyed by (solver,
sensitivity), with the reason (the same table as `UNSUPPORTED_COMBINATIONS` in
pystiffsens/backends/julia/names.py). What was read, and where, is in the README
(section "What is verified only by reading")."""
const UNSUPPORTED_COMBINATIONS = Dict{Tuple{String, String}, String}(
    ("LawsonEuler", "ForwardDiffSensitivity") => EXPONENTIAL_DUALS,
    ("LawsonEuler", "BacksolveAdjoint") => EXPONENTIAL_BACKWARD,
    ("LawsonEuler", "InterpolatingAdjoint") => EXPONENTIAL_BACKWARD,
    ("LawsonEuler", "QuadratureAdjoint") => EXPONENTIAL_BACKWARD,
    ("LawsonEuler", "GaussAdjoint") => EXPONENTIAL_BACKWARD,
    ("ETDRK4", "ForwardDiffSensitivity") => EXPONENTIAL_DUALS,
    ("ETDRK4", "BacksolveAdjoint") => EXPONENTIAL_BACKWARD,
    ("ETDRK4", "InterpolatingAdjoint") => EXPONENTIAL_BACKWARD,
    ("ETDRK4", "QuadratureAdjoint") => EXPONENTIAL_BACKWARD,
    ("ETDRK4", "GaussAdjoint") => EXPONENTIAL_BACKWARD,
)

"""
    check_combination(solver, sensitivity)

Throw if SciMLSensitivity cannot differentiate the algorithm named `solver` with the
sensitivity named `sensitivity` (`UNSUPPORTED_COMBINATIONS`).
"""
function check_combination(solver::AbstractString, sensitivity::AbstractString)
    key = (String(solver), String(sensitivity))
    haskey(UNSUPPORTED_COMBINATIONS, key) || return nothing
    usable = sort!([name for name in keys(SENSITIVITIES) if !haskey(UNSUPPORTED_COMBINATIONS, (key[1], name))])
    throw(
        ArgumentError(
            "solver $(repr(solver)) with sensitivity $(repr(sensitivity)) is not supported by PyStiffSens: " *
                "$(UNSUPPORTED_COMBINATIONS[key]); with $(repr(solver)) use $(join(usable, ", "))"
        )
    )
end

"""
    sensitivity_algorithm(name) -> SciMLSensitivity sensealg

The SciMLSensitivity sensealg of type `name` (a key of `SENSITIVITIES`, e.g.
"GaussAdjoint"), with its defaults; see the table at the top of this file.
"""
function sensitivity_algorithm(name::AbstractString)
    haskey(UNSUPPORTED_SENSITIVITIES, name) && throw(
        ArgumentError(
            "sensitivity $(repr(name)) is not supported by PyStiffSens: $(UNSUPPORTED_SENSITIVITIES[name]); " *
                "use one of $(join(sort!(collect(keys(SENSITIVITIES))), ", "))"
        )
    )
    haskey(SENSITIVITIES, name) || throw(
        ArgumentError("unknown sensitivity $(repr(name)); valid names: $(join(sort!(collect(keys(SENSITIVITIES))), ", "))")
    )
    return SENSITIVITIES[name]()
end
