"""Fully implicit Runge–Kutta methods: RadauIIA5 and tableaux of one's own through the FIRK stepper.

Textbook tableaux from Hairer & Wanner II, Sect. IV.5 (Gauss with 2 and 3 stages, Lobatto
IIIC with 3): their orders are derived from the coefficients and checked against the known
ones (2s, 2s, 2s - 2), their stability functions against the known limits.
"""

import numpy as np
import pandas as pd
import pytest

import pystiffsens as pss
from pystiffsens.solvers import ESDIRK, FIRK, ButcherTableau
from pystiffsens.solvers.tableaux import KENCARP4, RADAU5, RODAS5P, TRAPEZOID
from pystiffsens.solvers.tableaux._order import classical_order, elementary_weights, residuals
from pystiffsens.study.sweep import FarFromExactWarning

S3, S15 = np.sqrt(3.0), np.sqrt(15.0)
GAUSS2 = ButcherTableau(
    A=[[1 / 4, 1 / 4 - S3 / 6], [1 / 4 + S3 / 6, 1 / 4]], b=[1 / 2, 1 / 2], c=[1 / 2 - S3 / 6, 1 / 2 + S3 / 6],
    name="Gauss2",
)
GAUSS3 = ButcherTableau(
    A=[[5 / 36, 2 / 9 - S15 / 15, 5 / 36 - S15 / 30],
       [5 / 36 + S15 / 24, 2 / 9, 5 / 36 - S15 / 24],
       [5 / 36 + S15 / 30, 2 / 9 + S15 / 15, 5 / 36]],
    b=[5 / 18, 4 / 9, 5 / 18], c=[1 / 2 - S15 / 10, 1 / 2, 1 / 2 + S15 / 10], name="Gauss3",
)
LOBATTO_IIIC3 = ButcherTableau(
    A=[[1 / 6, -1 / 3, 1 / 6], [1 / 6, 5 / 12, -1 / 12], [1 / 6, 2 / 3, 1 / 6]], b=[1 / 6, 2 / 3, 1 / 6],
    c=[0.0, 1 / 2, 1.0], name="LobattoIIIC3",
)


def _max_residual(A, weights, order, theta=1.0):
    return max(abs(r) for r in residuals(lambda tree: elementary_weights(np.asarray(A), tree), weights, order,
                                         theta).values())


# ---------------------------------------------------------------- coefficients


def test_radau_iia5_order_conditions():
    for q in range(1, 6):
        assert _max_residual(RADAU5.A, RADAU5.b, q) < 1e-13, q
    assert _max_residual(RADAU5.A, RADAU5.b, 6) > 1e-4
    # RADAU5's embedded formula has an explicit h f(t0, y0) term: order 3 as a four-stage method.
    A_hat, b_hat = RADAU5.embedded_method
    for q in range(1, 4):
        assert _max_residual(A_hat, b_hat, q) < 1e-13, q
    assert _max_residual(A_hat, b_hat, 4) > 1e-4
    assert (RADAU5.order, RADAU5.embedded_order) == (5, 3)
    assert classical_order(RADAU5.A, RADAU5.b) == 5 and classical_order(A_hat, b_hat) == 3
    assert RADAU5.stiffly_accurate and RADAU5.adaptive and not RADAU5.diagonally_implicit
    np.testing.assert_allclose(RADAU5.c, [(4 - np.sqrt(6)) / 10, (4 + np.sqrt(6)) / 10, 1.0], atol=1e-15)
    # The collocation polynomial: dense output of order s = 3 at every theta.
    for theta in (0.3, 0.7):
        weights = RADAU5.dense @ theta ** np.arange(1, 4)
        for q in range(1, 4):
            assert _max_residual(RADAU5.A, weights, q, theta) < 1e-13


@pytest.mark.parametrize("tab, order", [(GAUSS2, 4), (GAUSS3, 6), (LOBATTO_IIIC3, 4)], ids=lambda v: str(v))
def test_order_derived_from_the_coefficients(tab, order):
    assert tab.order == order and tab.embedded_order == 0
    assert not tab.adaptive and not tab.diagonally_implicit
    np.testing.assert_array_equal(tab.b_error, 0.0)


def test_default_dense_output():
    # Gauss: a collocation method, so the default is its collocation polynomial (order s = 2).
    weights = GAUSS2.dense @ 0.4 ** np.arange(1, 3)
    assert _max_residual(GAUSS2.A, weights, 2, 0.4) < 1e-13
    # Repeated nodes: no collocation polynomial, theta * b.
    tab = ButcherTableau(A=[[0.5, 0.0], [0.0, 0.5]], b=[0.5, 0.5], c=[0.5, 0.5], name="twice")
    np.testing.assert_array_equal(tab.dense, [[0.5], [0.5]])
    assert tab.order == 2


def test_stability_from_the_coefficients():
    z = -np.geomspace(1e4, 1e6, 3)

    def slope(s):
        return np.polyfit(np.log(-z), np.log(np.abs(s.dR(z))), 1)[0]

    radau = pss.theory.stability_function(RADAU5)
    assert radau.limit_at_infinity == 0.0 and radau.decay_exponent == -2.0
    assert slope(radau) == pytest.approx(-2.0, abs=1e-3)
    assert pss.solvers.get("RadauIIA5").stability() is pss.solvers.get(RADAU5).stability()
    for gauss in (GAUSS2, GAUSS3):
        assert pss.theory.stability_function(gauss).limit_at_infinity == pytest.approx(1.0, abs=1e-12)
    lobatto = pss.theory.stability_function(LOBATTO_IIIC3)
    assert lobatto.limit_at_infinity == 0.0 and lobatto.decay_exponent == -3.0
    assert slope(lobatto) == pytest.approx(-3.0, abs=1e-3)


# ---------------------------------------------------------------- the catalog and refusals


def test_a_tableau_is_a_solver():
    assert pss.solvers.get(GAUSS2) is pss.solvers.get(GAUSS2) and isinstance(pss.solvers.get(GAUSS2), FIRK)
    assert pss.solvers.get(RADAU5) is pss.solvers.get("RadauIIA5") and isinstance(pss.solvers.get(RADAU5), FIRK)
    assert pss.solvers.get(KENCARP4) is pss.solvers.get("KenCarp4")
    assert pss.solvers.get(RODAS5P) is pss.solvers.get("Rodas5P")
    sdirk = ButcherTableau(A=[[0.5, 0.0], [0.5, 0.5]], b=[0.5, 0.5], c=[0.5, 1.0], name="sdirk")
    assert isinstance(pss.solvers.get(sdirk), ESDIRK)


def test_refusals():
    with pytest.raises(ValueError, match=r"tableau 'Gauss2' is fully implicit .*pystiffsens.solvers.FIRK"):
        ESDIRK(GAUSS2)
    with pytest.raises(ValueError, match=r"'Radau' has b_error_explicit=-0.27.*which ESDIRK does not use"):
        ESDIRK(ButcherTableau(A=np.tril(RADAU5.A), b=RADAU5.b, c=np.tril(RADAU5.A).sum(1), b_error=RADAU5.b_error,
                              b_error_explicit=RADAU5.b_error_explicit, name="Radau"))
    with pytest.raises(ValueError, match=r"tableau 'Trapezoid': A is singular or nearly so .*ESDIRK"):
        FIRK(TRAPEZOID)
    estimate = dict(A=GAUSS2.A, b=GAUSS2.b, c=GAUSS2.c, b_error=[0.1, -0.1], name="Gauss2pair")
    with pytest.raises(ValueError, match=r"'Gauss2pair' has an error estimate but A\^-1 has no real eigenvalue"):
        FIRK(ButcherTableau(**estimate))
    with pytest.raises(ValueError, match=r"sum\(b_error\) \+ b_error_explicit = 0.2, expected 0"):
        ButcherTableau(**estimate, b_error_explicit=0.2)


# ---------------------------------------------------------------- solving


@pytest.fixture(scope="module")
def smooth_problem():
    problem = pss.problems.get("van_der_pol", mu=1.0, t_end=1.0)
    reference = pss.solve(problem, "Rodas5P", rtol=1e-13, atol=1e-13).ys[-1]
    return problem, reference


@pytest.mark.parametrize("solver, order", [("RadauIIA5", 5), (GAUSS2, 4)], ids=["RadauIIA5", "Gauss2"])
def test_observed_convergence_order(solver, order, smooth_problem):
    """Fixed steps on Van der Pol (mu = 1); tight tolerances so Newton's error stays below the method's."""
    problem, reference = smooth_problem
    steps = np.array([0.1, 0.05, 0.025])
    errors = [np.abs(pss.solve(problem, solver, dt=h, rtol=1e-12, atol=1e-12).ys[-1] - reference).max()
              for h in steps]
    assert np.polyfit(np.log(steps), np.log(errors), 1)[0] == pytest.approx(order, abs=0.3)


def test_radau_iia5_on_robertson_matches_rodas5p():
    problem = pss.problems.get("robertson")
    radau = pss.solve(problem, "RadauIIA5", rtol=1e-8, atol=1e-10)
    rodas = pss.solve(problem, "Rodas5P", rtol=1e-8, atol=1e-10)
    assert radau.status == pss.ReturnCode.Success
    np.testing.assert_allclose(radau.ys, rodas.ys, rtol=1e-6, atol=1e-14)
    stats = radau.stats
    # Ceilings ~30% above today's (170 steps, 2 rejected, 2075 RHS evaluations, 349 LUs); Rodas5P takes 190 steps.
    assert stats["n_steps"] <= 220 and stats["n_rejected"] <= 10 and stats["n_f"] <= 2700, stats
    attempts = stats["n_steps"] + stats["n_rejected"]
    # One real and one complex LU per attempt (more only when Newton falls back to full Newton).
    assert 2 * attempts <= stats["n_lu"] <= 2 * attempts + 60 and stats["n_jac"] >= attempts


def test_coefficients_of_ones_own_run_wherever_a_solver_does(tmp_path):
    """Gauss2 given only as a ButcherTableau (not registered): every sensitivity against the exact
    gradient, a sweep, and its theory. RadauIIA5 with every sensitivity is in the pair families of
    tests/test_sensitivities.py and tests/test_front_door.py."""
    problem = pss.problems.get("linear_modes", lam=2.0)
    _, exact = problem.exact_loss_and_grad()
    for algorithm in pss.sensitivity.names():
        result = pss.gradient(problem, GAUSS2, algorithm, dt=0.05)
        assert result.status == pss.ReturnCode.Success and result.solver == "Gauss2", (algorithm, result.status)
        for key, value in exact.items():  # order 4 with h = 0.05: 1.5e-7 measured
            np.testing.assert_allclose(result.grad[key], value, rtol=1e-6, err_msg=algorithm)
    with pytest.warns(FarFromExactWarning):  # one step of a stiff problem is far from exact, as it should be
        frame = pss.sweep("dahlquist", [1e1, 1e2, 1e3], [GAUSS2], "forward", dt=1.0, progress=False)
    assert set(frame["solver"]) == {"Gauss2"} and (frame["status"] == "Success").all()
    # One step of Gauss on y' = -lam y: y1 = R(-lam), |R(-inf)| = 1, so the gradient R'(-lam) -> 0 as |z|^-2.
    theory = pss.theory.stability_function(GAUSS2)
    np.testing.assert_allclose(frame.set_index("stiffness")["grad"].to_numpy(), -theory.dR(-np.array([1e1, 1e2, 1e3])).real,
                               rtol=1e-10)
    assert theory.limit_at_infinity == pytest.approx(1.0) and theory.decay_exponent == -2.0
    # The frame names the method; the fit finds its theory when given the tableau that was swept.
    assert np.isnan(pss.fit_decay(frame)["theory_exponent"]).all()
    fits = pss.fit_decay(frame, solvers=[GAUSS2])
    assert (fits["theory_exponent"] == -2.0).all() and (fits["theory_n_step_exponent"] == -2.0).all()
    pss.report(frame, tmp_path, solvers=[GAUSS2])
    assert (pd.read_csv(tmp_path / "fits.csv")["theory_exponent"] == -2.0).all()
    with pytest.raises(ValueError, match=r"solvers= holds 'Gauss3'.*fit_decay\(frame, solvers=\[my_tableau\]\)"):
        pss.fit_decay(frame, solvers=["Gauss3"])


def test_forward_and_reverse_ad_agree_on_the_discrete_map():
    problem = pss.problems.get("robertson", t_end=10.0)
    forward = pss.gradient(problem, "RadauIIA5", "ForwardDiffSensitivity", rtol=1e-6, atol=1e-9)
    reverse = pss.gradient(problem, "RadauIIA5", "ReverseDiffAdjoint", rtol=1e-6, atol=1e-9)
    assert forward.status == reverse.status == pss.ReturnCode.Success
    for key in forward.grad:
        np.testing.assert_allclose(reverse.grad[key], forward.grad[key], rtol=1e-10)
