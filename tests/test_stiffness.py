"""Stiffness proxies on matrices with known spectra, and the stiffness along a solution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pystiffsens as pss
from pystiffsens.stiffness import (
    PROXY_COLUMNS,
    frobenius,
    singular_max,
    singular_ratio,
    spectral_radius,
    stiffness_along_solution,
    stiffness_ratio,
)

METHODS = ("gelfand", "power", "eig")


def non_normal(eigenvalues, coupling, seed=0):
    """``V diag(eigenvalues) V^-1`` with ``V`` unit upper triangular plus ``coupling`` times a
    random strictly upper part: eigenvalues known, far from normal for large ``coupling``."""
    n = len(eigenvalues)
    upper = np.triu(np.random.default_rng(seed).normal(size=(n, n)), 1)
    V = np.eye(n) + coupling * upper
    return V @ np.diag(eigenvalues) @ np.linalg.inv(V)


def test_diagonal_matrix_gives_exact_values():
    J = jnp.diag(jnp.array([-1.0, -10.0, -100.0]))
    assert stiffness_ratio(J) == pytest.approx(100.0, rel=1e-12)
    assert stiffness_ratio(J, part="real") == pytest.approx(100.0, rel=1e-12)
    for method in METHODS:
        assert spectral_radius(J, method) == pytest.approx(100.0, rel=1e-10), method
    assert singular_ratio(J) == pytest.approx(100.0, rel=1e-12)
    assert singular_max(J) == pytest.approx(100.0, rel=1e-12)
    assert frobenius(J) == pytest.approx(np.sqrt(1 + 1e2 + 1e4), rel=1e-12)


@pytest.mark.parametrize("coupling", [3.0, 100.0])
def test_gelfand_and_eigenvalues_agree_on_non_normal_matrices(coupling):
    J = non_normal([-2.0, -5.0, -40.0, 0.3], coupling)
    assert np.linalg.cond(np.linalg.eig(J)[1]) > 3 * coupling  # genuinely non-normal
    assert spectral_radius(J, "eig") == pytest.approx(40.0, rel=1e-8)
    assert spectral_radius(J, "gelfand") == pytest.approx(40.0, rel=1e-2)
    assert spectral_radius(J, "power") == pytest.approx(40.0, rel=1e-6)
    assert stiffness_ratio(J) == pytest.approx(40.0 / 0.3, rel=1e-8)
    assert stiffness_ratio(J, part="real") == pytest.approx(20.0, rel=1e-8)
    # The norms overestimate: the singular values do not see the spectrum of a non-normal J.
    assert singular_max(J) > 4 * 40.0
    assert singular_ratio(J) > stiffness_ratio(J)


def test_gelfand_on_jordan_block_where_norms_fail():
    J = jnp.array([[0.5, 100.0], [0.0, 0.5]])
    assert spectral_radius(J, "gelfand") == pytest.approx(0.5, rel=2e-2)
    assert singular_max(J) > 100.0


def test_gelfand_on_complex_dominant_pair():
    J = jnp.array([[1.0, -8.0], [0.5, 1.0]])  # eigenvalues 1 +- 2i, non-normal
    assert spectral_radius(J, "eig") == pytest.approx(np.sqrt(5.0), rel=1e-12)
    assert spectral_radius(J, "gelfand") == pytest.approx(np.sqrt(5.0), rel=2e-3)


def test_gelfand_neither_overflows_nor_underflows():
    assert spectral_radius(jnp.diag(jnp.array([1e200, 1.0]))) == pytest.approx(1e200, rel=1e-12)
    assert spectral_radius(jnp.diag(jnp.array([1e-200, 1e-250]))) == pytest.approx(1e-200, rel=1e-12)
    nilpotent = jnp.array([[0.0, 1.0], [0.0, 0.0]])
    assert spectral_radius(nilpotent) == 0.0
    assert np.all(jax.grad(spectral_radius)(nilpotent) == 0.0)
    assert np.all(jax.grad(spectral_radius)(jnp.zeros((3, 3))) == 0.0)
    assert np.isnan(spectral_radius(jnp.full((2, 2), jnp.nan)))


def test_batches_match_one_by_one_under_jit():
    J = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 5, 5))
    batched = jax.jit(lambda J: spectral_radius(J))(J)
    assert batched.shape == (2, 3)
    singles = np.array([[float(spectral_radius(J[i, j])) for j in range(3)] for i in range(2)])
    np.testing.assert_allclose(batched, singles, rtol=1e-12)
    np.testing.assert_allclose(batched, spectral_radius(J, "eig"), rtol=1e-2)
    vmapped = jax.vmap(jax.vmap(stiffness_ratio))(J)
    np.testing.assert_allclose(vmapped, stiffness_ratio(J), rtol=1e-12)
    for proxy in (singular_ratio, singular_max, frobenius):
        assert proxy(J).shape == (2, 3)


def test_gelfand_gradient_matches_eigenvalue_gradient_for_real_dominant_eigenvalue():
    J = jnp.array([[2.0, 5.0, 1.0], [0.0, -1.0, 3.0], [0.0, 0.0, 0.5]])
    grad_gelfand = jax.grad(spectral_radius)(J)
    grad_eig = jax.grad(lambda J: spectral_radius(J, "eig"))(J)
    np.testing.assert_allclose(grad_gelfand, grad_eig, atol=1e-2)
    grad_power = jax.grad(lambda J: spectral_radius(J, "power"))(J)
    np.testing.assert_allclose(grad_power, grad_eig, atol=1e-8)


def test_zero_eigenvalue_makes_the_modulus_ratio_infinite_but_not_the_real_one():
    J = jnp.diag(jnp.array([-1.0, -100.0, 0.0]))
    assert stiffness_ratio(J) == np.inf
    assert stiffness_ratio(J, part="real") == pytest.approx(100.0)
    assert np.isnan(stiffness_ratio(jnp.eye(2), part="real"))


def test_bad_input_names_the_choices():
    with pytest.raises(ValueError, match="gelfand, power, eig"):
        spectral_radius(jnp.eye(2), "gelfnd")
    with pytest.raises(ValueError, match="modulus, real"):
        stiffness_ratio(jnp.eye(2), part="imag")
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        frobenius(jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="squarings=0"):
        spectral_radius(jnp.eye(2), squarings=0)


def test_stiffness_along_solution_of_a_linear_problem():
    problem = pss.problems.get("linear_modes", lam=100.0)
    solution = pss.solve(problem, "Rodas5P")
    frame = stiffness_along_solution(problem, solution)
    assert list(frame.columns) == ["problem", "solver", "step", "t", *PROXY_COLUMNS]
    np.testing.assert_array_equal(frame["t"], solution.step_ts)
    assert len(frame) == solution.stats["n_steps"] + 1
    # J = [[-1, 1], [0, -100]] at every step.
    np.testing.assert_allclose(frame["stiffness_ratio"], 100.0, rtol=1e-10)
    np.testing.assert_allclose(frame["spectral_radius_eig"], 100.0, rtol=1e-10)
    np.testing.assert_allclose(frame["spectral_radius_gelfand"], 100.0, rtol=1e-2)
    np.testing.assert_allclose(frame["frobenius"], np.sqrt(1 + 1 + 1e4), rtol=1e-12)


def test_stiffness_along_robertson_uses_the_decaying_modes():
    problem = pss.problems.get("robertson")
    solution = pss.solve(problem, "Rodas5P")
    frame = stiffness_along_solution(problem, solution)
    # Mass conservation: one eigenvalue is 0 at every step, so only Lambert's ratio is finite.
    assert np.all(np.isinf(frame["stiffness_ratio"]) | (frame["stiffness_ratio"] > 1e6))
    later = frame[frame["t"] > 0.0]
    assert np.all(np.isfinite(later["stiffness_ratio_real"]))
    assert later["spectral_radius_eig"].max() > 1e3


def test_stiffness_along_solution_needs_accepted_steps():
    problem = pss.problems.get("linear_modes")

    class NoSteps:
        step_ts = None
        step_ys = None

    with pytest.raises(ValueError, match="pystiffsens.solve"):
        stiffness_along_solution(problem, NoSteps())


def test_stiffness_by_parameter_finds_the_rate_of_the_fast_mode():
    # linear_modes: J = [[-a, c], [0, -lam]], rho = max(a, lam) = lam = 100: scaling lam by 10 gives 1000.
    frame = pss.stiffness.stiffness_by_parameter(pss.problems.get("linear_modes"))
    assert list(frame["param"]) == ["lam", "a", "c"]
    np.testing.assert_allclose(frame["scaled_spectral_radius"], [1000.0, 100.0, 100.0], rtol=1e-12)
    np.testing.assert_allclose(frame["elasticity"], [1.0, 0.0, 0.0], atol=1e-12)
    # HIRES: of its twelve rates, the one its built-in stiffness knob sets (chosen by hand) comes first.
    hires = pss.problems.get("hires")
    frame = pss.stiffness.stiffness_by_parameter(hires, points=4)
    assert (frame["param"].iloc[0],) == hires.knob_entries() and frame["elasticity"].iloc[0] > 0.9
    assert frame["elasticity"].iloc[1] < 0.1


def test_stiffness_by_parameter_names_entries_as_frames_do_and_refuses_bad_input():
    from pystiffsens.results import flatten_params
    from pystiffsens.stiffness.by_parameter import entry_positions

    problem = pss.problems.get("stiff_neural_ode")
    assert sorted(name for name, _, _ in entry_positions(problem)) == sorted(flatten_params(problem.params))
    with pytest.raises(ValueError, match=r"factor=1.0 must be a positive number other than 1"):
        pss.stiffness.stiffness_by_parameter(problem, factor=1.0)
    with pytest.raises(ValueError, match=r"entries=\['lam_medium'\] are not parameter entries of 'stiff_neural_ode'"):
        pss.stiffness.stiffness_by_parameter(problem, entries=["lam_medium"])
