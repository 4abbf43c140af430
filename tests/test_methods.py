"""The methods added for comparison with the field: Rosenbrock23, TR-BDF2, Kvaerno5.

Each is checked as the first methods are (tests/test_tableaux.py, test_engine.py,
test_accuracy.py, test_sensitivities.py): order conditions and sharp orders of both
solutions, L-stability and the theory from the coefficients, dense output, measured
convergence order, an IVP Test Set reference each, cost counters on ROBER, and each path by
which a sensitivity reaches a method (METHOD_PATHS) against the exact gradient, with forward
mode against the discrete adjoint to 1e-10. They are kept
out of conftest's ALL_SOLVERS so the 7 x 6 pair families do not grow; they run the same
stepper classes (Rosenbrock, ESDIRK) as the methods in those families.
"""

import numpy as np
import pandas as pd
import pytest
from test_accuracy import REFERENCES
from test_tableaux import dense_weights, max_residual, residuals, stability_function

import pystiffsens as pss
from pystiffsens.solvers.tableaux import KVAERNO5, ROSENBROCK23, TRBDF2

METHODS = ["Rosenbrock23", "TRBDF2", "Kvaerno5"]
TABLEAUX = {"Rosenbrock23": ROSENBROCK23, "TRBDF2": TRBDF2, "Kvaerno5": KVAERNO5}
# Kvaerno's coefficients are published to 17 digits; the others are exact expressions in sqrt(2).
ORDER_TOL = {"Kvaerno5": 1e-13}


@pytest.mark.parametrize("name", METHODS)
def test_order_conditions_hold_and_are_sharp(name):
    tab = TABLEAUX[name]
    tol = ORDER_TOL.get(name, 1e-14)
    assert max_residual(tab, tab.b, tab.order) < tol
    assert max_residual(tab, tab.b_hat, tab.embedded_order) < tol
    assert max(abs(r) for r in residuals(tab, tab.b, tab.order + 1).values()) > 1e-6
    assert max(abs(r) for r in residuals(tab, tab.b_hat, tab.embedded_order + 1).values()) > 1e-6


@pytest.mark.parametrize("name", METHODS)
def test_l_stable_and_the_theory_from_the_coefficients(name):
    tab = TABLEAUX[name]
    assert abs(stability_function(tab, -1e6)) < 1e-4
    theory = pss.theory.stability_function(name)
    assert theory.limit_at_infinity == 0.0
    # |R'(z)| ~ C |z|^e with e from the degrees of R's polynomials; the formula against R' itself.
    z = np.array([-1e5, -1e6])
    slope = np.diff(np.log(np.abs(theory.dR(z)))) / np.diff(np.log(np.abs(z)))
    assert slope[0] == pytest.approx(theory.decay_exponent, abs=1e-3)
    assert theory.decay_exponent == -2.0
    # Stability on the left half-plane: |R| <= 1 on the imaginary axis and at a few points.
    for point in [1j, 10j, 1e3j, -1 + 5j, -50 + 1j]:
        assert abs(theory.R(point)) <= 1 + 1e-12


@pytest.mark.parametrize("name", METHODS)
def test_dense_output_is_third_order_and_ends_at_b(name):
    tab = TABLEAUX[name]
    for theta in (0.3, 0.7):
        weights = dense_weights(tab, theta)
        assert max_residual(tab, weights, min(tab.order, 3), theta) < 1e-12
    np.testing.assert_allclose(dense_weights(tab, 1.0), tab.b, atol=1e-12)


def test_esdirks_are_stiffly_accurate_with_an_explicit_first_stage():
    for tab in (TRBDF2, KVAERNO5):
        assert tab.stiffly_accurate and tab.explicit_first_stage and tab.adaptive
        assert len({float(d) for d in np.diag(tab.A)[1:]}) == 1  # one LU a step


@pytest.mark.parametrize("name", METHODS)
def test_observed_convergence_order(name):
    problem = pss.problems.get("van_der_pol", mu=1.0, t_end=1.0)
    reference = pss.solve(problem, "Rodas5P", rtol=1e-13, atol=1e-13).ys[-1]
    steps = np.array([0.1, 0.05, 0.025])
    errors = np.array([np.abs(pss.solve(problem, name, dt=h).ys[-1] - reference).max() for h in steps])
    observed = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert observed == pytest.approx(TABLEAUX[name].order, abs=0.3)


# One IVP Test Set problem per method (each compiles a program per problem): together they cover
# all four references (RadauIIA5 on ROBER against Rodas5P is in tests/test_firk.py).
TEST_SET = {"Rosenbrock23": ("hires", 1e-9), "TRBDF2": ("pollution", 1e-9), "Kvaerno5": ("robertson", 1e-10),
            "RadauIIA5": ("van_der_pol", 1e-10)}


@pytest.mark.parametrize("name", list(TEST_SET))
def test_ivp_test_set_reference(name):
    problem_name, rtol = TEST_SET[name]
    options, reference = REFERENCES[problem_name]
    sol = pss.solve(pss.problems.get(problem_name, **options), name, rtol=rtol, atol=rtol * 1e-4, max_steps=200_000)
    assert sol.status == pss.ReturnCode.Success, sol.status
    np.testing.assert_allclose(sol.ys[-1], reference, rtol=2e-4, atol=1e-17)


# Counters on ROBER (t in [0, 1e5], default tolerances) about 30% above today's.
COST_CEILINGS = {
    "Rosenbrock23": dict(n_steps=280, n_rejected=10, n_f=1120, n_jac=280, n_lu=280),
    "TRBDF2": dict(n_steps=530, n_rejected=10, n_f=2750, n_jac=540, n_lu=540),
    "Kvaerno5": dict(n_steps=70, n_rejected=10, n_f=1730, n_jac=270, n_lu=270),
}


@pytest.mark.parametrize("name", METHODS)
def test_cost_counters_capped_on_robertson(name):
    sol = pss.solve(pss.problems.get("robertson"), name)
    assert sol.status == pss.ReturnCode.Success
    for counter, ceiling in COST_CEILINGS[name].items():
        assert sol.stats[counter] <= ceiling, (counter, sol.stats)


# The ways a sensitivity uses a method's own code: its steps differentiated forward and in
# reverse, its dense output read by a backward solve with it, and its steps run backward
# from the end state. ForwardSensitivity steps an augmented state with the same stepper and
# GaussAdjoint reads the same dense output as InterpolatingAdjoint; the pair families run
# those two with the same stepper classes (conftest.STEPPER_FAMILIES).
METHOD_PATHS = ["ForwardDiffSensitivity", "ReverseDiffAdjoint", "InterpolatingAdjoint", "BacksolveAdjoint"]


@pytest.mark.parametrize("name", METHODS)
def test_each_sensitivity_path_against_the_exact_gradient(name):
    problem = pss.problems.get("linear_modes", lam=2.0)
    _, exact = problem.exact_loss_and_grad()
    results = {}
    for algorithm in METHOD_PATHS:
        result = pss.gradient(problem, name, algorithm, rtol=1e-9, atol=1e-11, max_steps=pss.memory.INITIAL_SAVED_STEPS)
        assert result.status == pss.ReturnCode.Success, algorithm
        for key, value in exact.items():
            assert result.grad[key] == pytest.approx(float(value), rel=2e-6, abs=1e-9), (algorithm, key)
        results[algorithm] = result.grad
    for key in exact:  # the same discrete map (adaptive steps) differentiated forward and backward
        np.testing.assert_allclose(results["ReverseDiffAdjoint"][key], results["ForwardDiffSensitivity"][key], rtol=1e-10)


def test_the_demo_and_the_sweep_cli_select_the_new_methods(monkeypatch, tmp_path, capsys):
    from pystiffsens.cli import main
    from pystiffsens.study import demo

    calls = []
    monkeypatch.setattr(demo, "run", lambda out, **kwargs: calls.append(kwargs) or {})
    monkeypatch.setattr("pystiffsens.study._cli._print_done", lambda paths: None)
    assert main(["demo", "--out", str(tmp_path), "--no-progress", "--solvers", "rosenbrock23,TRBDF2,ImplicitEuler"]) == 0
    assert calls == [dict(progress=False, adaptive=["Rosenbrock23", "TRBDF2"], fixed=["ImplicitEuler"])]
    assert main(["demo", "--out", str(tmp_path), "--solvers", "Kvaerno6"]) == 2
    assert "Unknown solver 'Kvaerno6'" in capsys.readouterr().err
    assert main(["sweep", "--problem", "dahlquist", "--solvers", "Kvaerno5", "--stiffness", "1e1:1e2:2",
                 "--out", str(tmp_path / "sweep"), "--no-progress"]) == 0
    frame = pd.read_csv(tmp_path / "sweep" / "gradients.csv")
    assert set(frame["solver"]) == {"Kvaerno5"} and (frame["status"] == "Success").all()
