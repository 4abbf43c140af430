"""Exponential integrators (LawsonEuler, ETDRK4): exact on Dahlquist's equation, their order, forward
mode against the discrete adjoint, a stiffness sweep whose gradient decays as the exact one, and their
theory. LawsonEuler with every sensitivity is in the pair families (tests/test_sensitivities.py)."""

import argparse
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

import pystiffsens as pss
from pystiffsens.options import Options
from pystiffsens.solvers.base import OneStepState
from pystiffsens.solvers.exponential import ETDRK4, ExponentialTableau
from pystiffsens.solvers.partitioned import QuadratureRHS
from pystiffsens.solvers.phi import phi_functions
from pystiffsens.study.sweep import FarFromExactWarning

EXPONENTIAL = ["LawsonEuler", "ETDRK4"]
TOL = Options(rtol=1e-6, atol=1e-8, dt=1.0)


def _dahlquist_rhs(t, y, lam):
    return -lam * y


def _one_step(solver):
    """``lam -> (y1, dy1/dlam by reverse mode, by forward mode, dense output)`` of one step h = 1 from y0 = 1."""
    method = pss.solvers.get(solver)

    def step(lam):
        return method.attempt(_dahlquist_rhs, 0.0, 1.0, OneStepState(jnp.ones(1)), lam, TOL)

    y1 = lambda lam: step(lam).state.y[0]
    return jax.jit(jax.vmap(lambda lam: (y1(lam), jax.grad(y1)(lam), jax.jacfwd(y1)(lam), step(lam).dense)))


def test_one_step_on_dahlquist_is_the_exact_flow_and_its_gradient_the_exact_sensitivity():
    # Lawson Euler's gradient keeps its relative accuracy however small e^-lam is; ETDRK4's is a sum of
    # terms of size ~1/lam that cancel, accurate to ~1e-17 absolute (exponential.py, "Rounding").
    # Far beyond any power-law scale (lam = 1e8) the step and its gradient underflow to 0, without NaN.
    for solver, lam in (("LawsonEuler", [0.5, 3.0, 10.0, 40.0, 300.0, 1e8]), ("ETDRK4", [0.5, 3.0, 10.0, 1e8])):
        lam = jnp.array(lam)
        exact, sensitivity = np.exp(-lam), -np.exp(-lam)  # y(1) and dy(1)/dlam of y' = -lam y, y(0) = 1
        y1, reverse, forward, dense = _one_step(solver)(lam)
        np.testing.assert_allclose(y1, exact, rtol=1e-12)
        np.testing.assert_allclose(reverse, sensitivity, rtol=1e-12)
        np.testing.assert_allclose(forward, sensitivity, rtol=1e-12)
        method = pss.solvers.get(solver)
        np.testing.assert_allclose(method.interpolate(dense[1], 0.0), [1.0], rtol=1e-15)
        np.testing.assert_allclose(method.interpolate(dense[1], 1.0), [exact[1]], rtol=1e-13)
    # ETDRK4's dense nodes hold its continuous extension, exact on a linear problem.
    np.testing.assert_allclose(dense[:, 1:3, 0], np.exp(-np.outer(lam, [0.25, 0.5])), rtol=1e-13)
    # An implicit method's step is R(z) = 1/(1 - z): its gradient decays like lam^-2, not like exp(-lam).
    lam = jnp.array([0.5, 3.0, 40.0])
    sensitivity = -np.exp(-lam)
    y1, reverse, _, _ = _one_step("ImplicitEuler")(lam)
    np.testing.assert_allclose(reverse, -1.0 / (1.0 + lam) ** 2, rtol=1e-12)
    assert np.all(np.abs(reverse / sensitivity - 1.0) > 0.2)


def _van_der_pol_reference():
    """y(1) of Van der Pol, mu = 1 (pss.problems' form), by SciPy's DOP853 at rtol 1e-13."""
    rhs = lambda t, y: [y[1], (1.0 - y[0] ** 2) * y[1] - y[0]]
    return solve_ivp(rhs, (0.0, 1.0), [2.0, 0.0], method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]


@pytest.mark.parametrize("solver, order, steps", [("LawsonEuler", 1, (0.05, 0.025, 0.0125)),
                                                  ("ETDRK4", 4, (0.1, 0.05, 0.025))])
def test_observed_order_and_cost_counters_on_van_der_pol(solver, order, steps):
    problem = pss.problems.get("van_der_pol", mu=1.0, t_end=1.0)
    reference = _van_der_pol_reference()
    errors = []
    for h in steps:
        sol = pss.solve(problem, solver, dt=h)
        errors.append(np.abs(sol.ys[-1] - reference).max())
        n = sol.stats["n_steps"]
        assert n == round(1.0 / h)
        assert sol.stats["n_f"] == pss.solvers.get(solver).tableau.stages * n
        assert sol.stats["n_jac"] == n == sol.stats["n_lu"]  # one Jacobian, one exponential (Padé LU) a step
    observed = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert observed == pytest.approx(order, abs=0.2)


def test_forward_and_reverse_ad_agree_through_etdrk4_steps():
    """Lawson Euler runs every sensitivity in the pair families (tests/test_sensitivities.py,
    tests/test_front_door.py); here ETDRK4's discrete map, on a nonlinear problem."""
    problem = pss.problems.get("van_der_pol", mu=1.0, t_end=1.0)
    forward = pss.gradient(problem, "ETDRK4", "ForwardDiffSensitivity", dt=0.1)
    reverse = pss.gradient(problem, "ETDRK4", "ReverseDiffAdjoint", dt=0.1)
    assert forward.grad["mu"] == pytest.approx(reverse.grad["mu"], rel=1e-10)
    assert forward.loss == reverse.loss


@pytest.mark.parametrize("solver", EXPONENTIAL)
def test_quadrature_variables_are_integrated_as_the_whole_vector_with_its_full_jacobian(solver):
    """The block formulas (only dF/da formed, one product with dG/da) give the step of the plain
    right-hand side, whose Jacobian [[A, 0], [B, 0]] is formed whole."""

    def F(t, a, p):
        return jnp.stack([a[1], p * (1.0 - a[0] ** 2) * a[1] - a[0] + jnp.sin(t)])

    def G(t, a, p):
        return jnp.stack([a[0] ** 2 * a[1], jnp.cos(a[1]) * t, a[0]])

    quadrature = QuadratureRHS(lambda t, a, p: (F(t, a, p), G(t, a, p)), size=2)
    plain = lambda t, z, p: jnp.concatenate([F(t, z[:2], p), G(t, z[:2], p)])
    method = pss.solvers.get(solver)
    z0 = OneStepState(jnp.array([1.5, -0.3, 0.2, 0.1, -0.4]))
    steps = jax.jit(jax.vmap(lambda h: [method.attempt(rhs, 0.2, h, z0, 2.0, TOL).dense for rhs in (quadrature, plain)]))
    split, whole = steps(jnp.array([0.3, 3.0]))
    np.testing.assert_allclose(split, whole, rtol=1e-13, atol=1e-14)


def test_etdrk4_weights_are_exponential_quadrature():
    """Cox & Matthews' weights on a non-normal matrix z: sum_j a_ij(z) = c_i phi_1(c_i z) and
    sum_i b_i(z) c_i^k / k! = phi_(k+1)(z), k = 0, 1, 2 (Hochbruck & Ostermann, Acta Numer. 2010, Sect. 2.3)."""
    z = jnp.array([[-3.0, 1.0, 0.0], [0.5, -0.2, 2.0], [0.0, -1.0, -40.0]])
    phis = jax.jit(phi_functions, static_argnums=(1, 2))(z, 4, tuple(sorted(ETDRK4.fractions)))
    weight = lambda terms: sum(coef * phis[c][k] for coef, k, c in terms)
    for i, row in enumerate(ETDRK4.a):
        if i:
            c = ETDRK4.c[i]
            np.testing.assert_allclose(sum(map(weight, row)), c * phis[c][1], atol=1e-14)
    for k in range(3):
        total = sum(weight(b) * c**k / math.factorial(k) for b, c in zip(ETDRK4.b, ETDRK4.c))
        np.testing.assert_allclose(total, phis[1.0][k + 1], atol=1e-14)


def test_phi_functions_against_closed_forms_and_bad_input():
    z = np.array([-1e6, -30.0, -1e-3, 2.0])
    for value in z:
        phis = phi_functions(jnp.array([[value]]), 2, {1.0, 0.5})
        for c in (1.0, 0.5):
            w = c * value
            closed = [np.exp(w), np.expm1(w) / w, (np.expm1(w) - w) / w**2]
            np.testing.assert_allclose(phis[c][:, 0, 0], closed, rtol=1e-10)
    with pytest.raises(ValueError, match=r"fraction 0\.75 is not 1/2\^j .*valid: 1, 0\.5, 0\.25"):
        phi_functions(jnp.eye(2), 1, {0.75})
    with pytest.raises(ValueError, match=r"weights b sum to .* not 1"):
        ExponentialTableau(name="bad", order=1, c=(0.0,), a=((),), b=(((0.5, 1, 1.0),),), dense_nodes=(),
                           reference="")


def test_stiffness_sweep_gradient_decays_as_the_exact_one_for_lawson_euler_and_as_lam_minus_2_for_implicit_euler():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FarFromExactWarning)  # ImplicitEuler's, on purpose
        frame = pss.sweep("dahlquist", [10.0, 30.0, 100.0, 300.0], ["LawsonEuler", "ImplicitEuler"],
                          "ForwardDiffSensitivity", dt=1.0, progress=False)
    lawson = frame[frame["solver"] == "LawsonEuler"]
    assert (lawson["status"] == "Success").all() and (lawson["n_steps"] == 1).all()
    np.testing.assert_allclose(lawson["grad"], lawson["exact_grad"], rtol=1e-12)
    assert not lawson["far_from_exact"].any()
    fits = pss.fit_decay(frame).set_index("solver")
    assert fits.loc["LawsonEuler", "exponent"] == pytest.approx(fits.loc["LawsonEuler", "exact_exponent"], rel=1e-9)
    assert fits.loc["LawsonEuler", "theory_exponent"] == -np.inf == fits.loc["LawsonEuler", "theory_n_step_exponent"]
    assert fits.loc["ImplicitEuler", "exponent"] == pytest.approx(-2.0, abs=0.1)
    assert fits.loc["ImplicitEuler", "theory_n_step_exponent"] == -2.0
    table = pss.compare(frame, fits.reset_index())
    assert table.set_index("solver").loc["LawsonEuler", "theory_exponent"] == -np.inf


def test_theory_is_the_exponential_and_the_cli_prints_it(tmp_path, capsys):
    from pystiffsens.theory import _cli

    for name in EXPONENTIAL:
        theory = pss.theory.stability_function(name)
        assert isinstance(theory, pss.theory.ExponentialStability) and theory.name == name
        z = np.array([-0.5, -3.0 + 2.0j, 4.0j])
        np.testing.assert_allclose(theory.R(z), np.exp(z), rtol=1e-15)
        np.testing.assert_allclose(theory.dR(z), np.exp(z), rtol=1e-15)
        assert theory.decay_exponent == -np.inf == pss.theory.numerical_decay_exponent(name)
        assert theory.limit_at_infinity == 0.0 and theory.poles().size == 0
        assert pss.theory.is_l_stable(name) and pss.theory.a_alpha_angle(name) == 90.0
    # n fixed steps: dy_n/dlam = t_n e^(lam t_n), the exact flow's sensitivity.
    assert pss.theory.n_step_sensitivity("ETDRK4", -5.0, 0.1, 10) == pytest.approx(np.exp(-5.0), rel=1e-14)
    assert pss.theory.format_exponent(-np.inf) == "exponential (faster than any power)"
    assert {"LawsonEuler", "ETDRK4"} <= set(pss.theory.method_names())
    parser = argparse.ArgumentParser(prog="pystiffsens")
    _cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["theory", "--methods", "ImplicitEuler,LawsonEuler,ETDRK4", "--out", str(tmp_path)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("exponential (faster than any power)") == 4 and "nan" not in printed.lower()
    table = pd.read_csv(tmp_path / "exponents.csv")
    assert table["decay_exponent"].tolist() == [-2.0, -np.inf, -np.inf]
    assert table["numerical_exponent"].iloc[1:].tolist() == [-np.inf, -np.inf]


def test_a_split_problem_gives_the_linear_part_of_the_integrating_factor():
    """On SplitRHS(L(p) y, N) Lawson Euler steps with L = L(p) exactly: y1 = e^(hL)(y0 + h N(y0))
    (Fronk & Petzold's integrating-factor Euler); on the unsplit sum L is the full Jacobian."""
    from scipy.linalg import expm

    L = lambda p: jnp.array([[-p["lam"], 1.0], [0.0, -1.0]])  # noqa: E731
    N = lambda t, y, p: jnp.stack([jnp.sin(y[1]), p["mu"] * y[0] ** 2])  # noqa: E731
    params = {"lam": 50.0, "mu": 0.3}
    y0 = np.array([1.0, 0.5])
    split = pss.Problem(pss.SplitRHS(lambda t, y, p: L(p) @ y, N), y0, (0.0, 0.1), params)
    whole = split.replace(rhs=lambda t, y, p: L(p) @ y + N(t, y, p))
    expected = expm(0.1 * np.asarray(L(params))) @ (y0 + 0.1 * np.asarray(N(0.0, y0, params)))
    np.testing.assert_allclose(pss.solve(split, "LawsonEuler", dt=0.1).ys[-1], expected, rtol=1e-13)
    assert not np.allclose(pss.solve(whole, "LawsonEuler", dt=0.1).ys[-1], expected, rtol=1e-6)


def test_an_exponential_tableau_is_accepted_wherever_a_solver_is():
    import dataclasses

    assert pss.solvers.get(pss.solvers.LAWSON_EULER) is pss.solvers.get("LawsonEuler")
    mine = dataclasses.replace(pss.solvers.LAWSON_EULER, name="MyLawson")
    assert pss.solvers.get(mine) is pss.solvers.get(mine) and pss.solvers.get(mine).name == "MyLawson"
    assert pss.theory.decay_exponent(mine) == -np.inf
    problem = pss.problems.get("dahlquist", lam=30.0)
    ours, builtin = (pss.solve(problem, method, dt=0.1) for method in (mine, "LawsonEuler"))
    assert ours.status == pss.ReturnCode.Success
    np.testing.assert_array_equal(ours.ys, builtin.ys)
