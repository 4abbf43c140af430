"""Sensitivity algorithms: every algorithm with every solver, against exact and finite-difference gradients."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ALL_SOLVERS, FIXED_DT, STEPPER_FAMILIES

import pystiffsens as pss

ALGORITHMS = pss.sensitivity.names()
# Relative gradient error expected from each solver's discretisation at the settings below.
SOLVER_TOLERANCE = {"ImplicitEuler": 5e-3, "Trapezoid": 1e-3, "BDF2": 1e-3, "LawsonEuler": 5e-3}


def _grad_vector(result):
    return np.concatenate([np.ravel(result.grad[k]) for k in sorted(result.grad)])


@pytest.mark.parametrize("solver", STEPPER_FAMILIES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_with_every_solver(algorithm, solver):
    """linear_modes (lam = 2, mild enough for BacksolveAdjoint) against its exact sensitivity."""
    problem = pss.problems.get("linear_modes", lam=2.0)
    # max_steps as tests/test_front_door.py's references: the same compiled programs serve both.
    result = pss.gradient(problem, solver, algorithm, rtol=1e-9, atol=1e-11, dt=FIXED_DT.get(solver),
                          max_steps=pss.memory.INITIAL_SAVED_STEPS)
    assert result.status == pss.ReturnCode.Success, result.status
    exact_loss, exact_grad = problem.exact_loss_and_grad()
    exact = np.concatenate([np.ravel(exact_grad[k]) for k in sorted(exact_grad)])
    np.testing.assert_allclose(_grad_vector(result), exact, rtol=SOLVER_TOLERANCE.get(solver, 2e-6), atol=1e-9)
    assert result.stats["n_steps"] > 0
    if pss.sensitivity.get(algorithm).backward_solve:
        assert result.stats["backward_n_steps"] > 0


@pytest.mark.parametrize("name, options", [("dahlquist", dict(lam=30.0)), ("prothero_robinson", dict(lam=50.0, omega=2.0))])
@pytest.mark.parametrize("algorithm", ["ForwardDiffSensitivity", "ReverseDiffAdjoint", "ForwardSensitivity", "InterpolatingAdjoint", "GaussAdjoint"])
def test_scalar_problems_against_exact(name, options, algorithm):
    problem = pss.problems.get(name, **options)
    result = pss.gradient(problem, "Rodas5P", algorithm, rtol=1e-10, atol=1e-12)
    exact_loss, exact_grad = problem.exact_loss_and_grad()
    assert result.loss == pytest.approx(float(exact_loss), rel=1e-7)
    for key, value in exact_grad.items():
        assert result.grad[key] == pytest.approx(float(value), rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_forward_and_reverse_ad_agree_on_the_discrete_map(solver):
    """Same discrete map, so forward-mode and the discrete adjoint agree to rounding."""
    fixed = solver in FIXED_DT
    # With fixed steps, ROBER's initial layer needs dt <= 1e-4 for Newton to converge; adaptive
    # steps run to t = 10, where step-size control shapes the map (the new methods of
    # tests/test_methods.py and tests/test_firk.py check the same on their own problems).
    for name, options in [("robertson", dict(t_end=1e-2 if fixed else 10.0))]:
        problem = pss.problems.get(name, **options)
        kwargs = dict(rtol=1e-6, atol=1e-9, dt=1e-4 if fixed else None)
        forward = pss.gradient(problem, solver, "ForwardDiffSensitivity", **kwargs)
        reverse = pss.gradient(problem, solver, "ReverseDiffAdjoint", **kwargs)
        assert forward.status == reverse.status == pss.ReturnCode.Success
        np.testing.assert_allclose(_grad_vector(reverse), _grad_vector(forward), rtol=1e-10)


@pytest.mark.parametrize("algorithm", ["ForwardSensitivity", "InterpolatingAdjoint", "GaussAdjoint"])
def test_continuous_sensitivities_converge_as_tolerances_tighten(algorithm):
    problem = pss.problems.get("linear_modes", lam=50.0)
    exact = np.array([float(v) for _, v in sorted(problem.exact_loss_and_grad()[1].items())])
    tolerances = np.array([1e-4, 1e-6, 1e-8, 1e-10])
    errors = []
    for rtol in tolerances:
        result = pss.gradient(problem, "Rodas5P", algorithm, rtol=rtol, atol=rtol * 1e-2)
        errors.append(np.max(np.abs(_grad_vector(result) - exact) / np.abs(exact)))
    errors = np.array(errors)
    slope = np.polyfit(np.log10(tolerances), np.log10(errors), 1)[0]
    assert np.all(np.diff(errors) < 0), errors
    assert slope > 0.6, (slope, errors)
    assert errors[-1] < 1e-7


@pytest.mark.parametrize("solver, algorithm", [("Rodas5P", "GaussAdjoint"), ("FBDF", "InterpolatingAdjoint")])
def test_continuous_adjoints_resolve_a_fast_layer_at_a_late_final_time(solver, algorithm):
    """``y' = -k (y - b)`` on ``[0, 1e8]`` (a PEtab preequilibration's span), loss ``sum(y(T))``: ``dL/db = 1``
    comes from the adjoint's layer of width ``1/k = 1e-4`` before ``T``. Timed in ``t`` itself, FBDF's first
    backward steps into it were shorter than the step-size floor near ``1e8`` (``DtLessThanMin``), and
    GaussAdjoint, reading the adjoint at differences of times near ``1e8`` (ulp 1.5e-8), put ``dL/db``
    5.5e-5 off (Zheng_PNAS2012's GaussAdjoint gradient was 2e-3 from forward mode's)."""
    k, b = np.array([1e4, 1.0]), np.array([1.0, 1.0])
    problem = pss.Problem(lambda t, y, p: -p["k"] * (y - p["b"]), np.zeros(2), (0.0, 1e8), {"k": k, "b": b})
    result = pss.gradient(problem, solver, algorithm, rtol=1e-8, atol=1e-10)
    assert result.status == pss.ReturnCode.Success
    np.testing.assert_allclose(result.grad["b"], 1.0, rtol=1e-7)
    np.testing.assert_allclose(result.grad["k"], 0.0, atol=1e-12)


def _central_differences(problem, params_key, rtol):
    """Central finite differences of tightly solved runs (relative step 1e-4)."""
    base = problem.params
    out = {}
    for key in params_key:
        step = 1e-4 * abs(float(base[key]))
        losses = []
        for sign in (1, -1):
            shifted = problem.replace(params={**base, key: base[key] + sign * step})
            losses.append(pss.gradient(shifted, "Rodas5P", "ForwardDiffSensitivity", rtol=rtol, atol=rtol * 1e-4).loss)
        out[key] = (losses[0] - losses[1]) / (2 * step)
    return out


@pytest.mark.parametrize(
    "name, options, params",
    [("robertson", dict(t_end=40.0), ["k1", "k2", "k3"]), ("van_der_pol", dict(mu=10.0), ["mu"])],
)
def test_against_finite_differences(name, options, params):
    problem = pss.problems.get(name, **options)
    reference = _central_differences(problem, params, rtol=1e-12)
    for algorithm in ("ReverseDiffAdjoint", "InterpolatingAdjoint", "GaussAdjoint", "ForwardSensitivity"):
        result = pss.gradient(problem, "Rodas5P", algorithm, rtol=1e-9, atol=1e-13)
        for key in params:
            assert result.grad[key] == pytest.approx(reference[key], rel=1e-4), (algorithm, key)


def test_backsolve_adjoint_reports_instability_on_stiff_problems():
    problem = pss.problems.get("robertson", t_end=40.0)
    with pytest.warns(RuntimeWarning, match="BacksolveAdjoint failed with status .*unstable on stiff problems"):
        result = pss.gradient(problem, "Rodas5P", "BacksolveAdjoint")
    assert result.status != pss.ReturnCode.Success
    assert all(np.isnan(v).all() for v in result.grad.values())


def test_unused_parameter_has_zero_gradient():
    problem = pss.Problem(lambda t, y, p: -p["lam"] * y, [1.0], (0.0, 1.0), {"lam": 2.0, "unused": np.ones(3)})
    for algorithm in ("ForwardDiffSensitivity", "ReverseDiffAdjoint", "InterpolatingAdjoint"):
        result = pss.gradient(problem, "Rodas5P", algorithm)
        assert result.grad["unused"].shape == (3,)
        np.testing.assert_array_equal(result.grad["unused"], 0.0)


def test_unknown_and_julia_only_sensitivities():
    problem = pss.problems.get("dahlquist")
    with pytest.raises(ValueError, match=r"Unknown sensitivity 'Backsolve'.*BacksolveAdjoint.*adjoint \(= InterpolatingAdjoint\).*Did you mean"):
        pss.gradient(problem, "Rodas5P", "Backsolve")
    with pytest.raises(ValueError, match=r"'QuadratureAdjoint' exists only on backend='julia'; backend='jax' has "):
        pss.gradient(problem, "Rodas5P", "QuadratureAdjoint")


def test_aliases():
    assert isinstance(pss.sensitivity.get("forward"), pss.sensitivity.ForwardDiffSensitivity)
    assert isinstance(pss.sensitivity.get("adjoint"), pss.sensitivity.InterpolatingAdjoint)


def test_gradient_fn_is_jittable_and_vmappable_over_stiffness():
    problem = pss.problems.get("prothero_robinson")
    # max_steps at the first automatic record length: one record length in the program (tests/test_front_door.py
    # tests the ladder of lengths).
    fn = pss.make_gradient_fn(problem, "KenCarp4", "ReverseDiffAdjoint", rtol=1e-8, atol=1e-10,
                              max_steps=pss.memory.INITIAL_SAVED_STEPS)
    stiffness = jnp.array([10.0, 100.0, 1000.0])
    batched = jax.jit(jax.vmap(lambda s: fn(problem.set_stiffness(problem.params, s))))(stiffness)
    for i, s in enumerate(stiffness):
        single = pss.gradient(problem.with_stiffness(float(s)), "KenCarp4", "ReverseDiffAdjoint", rtol=1e-8, atol=1e-10)
        assert float(batched["grad"]["lam"][i]) == pytest.approx(float(single.grad["lam"]), rel=1e-10)
    # The discrete gradient follows the exact one for the slow parameter.
    exact = [float(problem.exact_loss_and_grad(problem.set_stiffness(problem.params, s))[1]["omega"]) for s in stiffness]
    np.testing.assert_allclose(batched["grad"]["omega"], exact, rtol=1e-5)


def test_one_failed_stiffness_value_does_not_spoil_the_batch():
    problem = pss.problems.get("van_der_pol")
    fn = pss.make_gradient_fn(problem, "Rodas5P", "forward", max_steps=300)
    out = jax.vmap(lambda s: fn(problem.set_stiffness(problem.params, s)))(jnp.array([1.0, 10.0, 1e5]))
    assert out["status"].tolist() == [0, 0, int(pss.ReturnCode.MaxIters)]
    assert np.isfinite(out["grad"]["mu"][:2]).all() and np.isnan(out["grad"]["mu"][2])
