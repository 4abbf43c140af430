"""Order conditions, stiff accuracy, stability and dense output of the coefficient tables.

Order conditions are the rooted-tree conditions ``sum_i b_i Phi_i(t) = 1/gamma(t)``
(Hairer, Nørsett & Wanner I, Sect. II.2; for Rosenbrock methods Hairer & Wanner II,
Sect. IV.7, Table 7.1, where a vertex with one child contributes ``beta = alpha + Gamma``
and a vertex with several children contributes ``alpha`` to each child). Dense output
satisfies the same conditions with ``b_i(theta)`` and right-hand side ``theta**|t|/gamma(t)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pystiffsens.solvers.tableaux import (
    IMPLICIT_EULER,
    KENCARP4,
    RODAS4,
    RODAS5P,
    TRAPEZOID,
    ButcherTableau,
    RosenbrockTableau,
)
from pystiffsens.solvers.tableaux._order import classical_order, density, elementary_weights, trees
from pystiffsens.solvers.tableaux._order import residuals as order_residuals

TOL = 1e-12
BUTCHER = [KENCARP4, IMPLICIT_EULER, TRAPEZOID]
ROSENBROCK = [RODAS4, RODAS5P]
DENSE_ORDER = {"KenCarp4": 3, "ImplicitEuler": 1, "Trapezoid": 2, "Rodas4": 3, "Rodas5P": 4}
THETAS = (0.3, 0.7)


# --- rooted trees (pystiffsens.solvers.tableaux._order): a tree is the sorted tuple of its children ---

def phi_butcher(tab: ButcherTableau, tree) -> np.ndarray:
    return elementary_weights(tab.A, tree)


def phi_rosenbrock(tab: RosenbrockTableau, tree) -> np.ndarray:
    if len(tree) == 1:
        return tab.beta @ phi_rosenbrock(tab, tree[0])
    return math.prod((tab.alpha_matrix @ phi_rosenbrock(tab, child) for child in tree),
                     start=np.ones(tab.stages))


def phi(tab, tree) -> np.ndarray:
    return phi_butcher(tab, tree) if isinstance(tab, ButcherTableau) else phi_rosenbrock(tab, tree)


def residuals(tab, weights, order: int, theta: float = 1.0) -> dict:
    """``sum_i w_i Phi_i(t) - theta**|t|/gamma(t)`` for every tree with exactly ``order`` vertices."""
    return order_residuals(lambda tree: phi(tab, tree), weights, order, theta)


def max_residual(tab, weights, max_order: int, theta: float = 1.0) -> float:
    return max(abs(r) for q in range(1, max_order + 1) for r in residuals(tab, weights, q, theta).values())


# --- dense-output weights in the original (b) form ---

def dense_weights(tab, theta: float) -> np.ndarray:
    if isinstance(tab, ButcherTableau):
        powers = theta ** np.arange(1, tab.dense.shape[1] + 1)
        return tab.dense @ powers
    # y(theta) = y0 + sum_i m_i(theta) U_i with
    # m(theta) = theta m + theta (1 - theta) sum_r theta**r H[r]; U = Gamma k gives b(theta) = m(theta) Gamma.
    powers = theta ** np.arange(tab.H.shape[0])
    m_theta = theta * tab.m + theta * (1 - theta) * (powers @ tab.H)
    return m_theta @ tab.Gamma


# --- a minimal reference Rosenbrock step for y' = lam y, straight from the stated stage equation ---

def rosenbrock_linear_step(tab: RosenbrockTableau, lam: complex, h: float, y0: complex = 1.0):
    """Solve ``(1/(h gamma) - lam) U_i = lam (y0 + sum_j a_ij U_j) + sum_j C_ij/h U_j``; return ``(U, y1)``."""
    U = np.zeros(tab.stages, dtype=complex)
    for i in range(tab.stages):
        rhs = lam * (y0 + tab.a[i, :i] @ U[:i]) + tab.C[i, :i] @ U[:i] / h
        U[i] = rhs / (1 / (h * tab.gamma) - lam)
    return U, y0 + tab.m @ U


def rosenbrock_dense(tab: RosenbrockTableau, U, y0, y1, theta: float):
    """The Horner form of the ``RosenbrockTableau`` docstring."""
    K = tab.H @ U
    inner = K[-1]
    for k in K[-2::-1]:
        inner = k + theta * inner
    return (1 - theta) * y0 + theta * (y1 + (1 - theta) * inner)


def stability_function(tab, z: complex) -> complex:
    M = tab.A if isinstance(tab, ButcherTableau) else tab.beta
    s = tab.stages
    return 1 + z * tab.b @ np.linalg.solve(np.eye(s) - z * M, np.ones(s))


# --- the tree machinery itself ---

def test_tree_counts():
    assert [len(trees(q)) for q in range(1, 7)] == [1, 1, 2, 4, 9, 20]
    assert density(((),)) == 2 and density(((), ())) == 3 and density((((),),)) == 6


# --- order conditions ---

@pytest.mark.parametrize("tab", BUTCHER + ROSENBROCK, ids=lambda t: t.name)
def test_order_conditions(tab):
    assert max_residual(tab, tab.b, tab.order) < TOL
    if tab.embedded_order:
        assert max_residual(tab, tab.b_hat, tab.embedded_order) < TOL


@pytest.mark.parametrize("tab", BUTCHER, ids=lambda t: t.name)
def test_derived_orders_are_the_stated_ones(tab):
    assert classical_order(tab.A, tab.b) == tab.order
    if tab.embedded_order:
        assert classical_order(*tab.embedded_method) == tab.embedded_order


@pytest.mark.parametrize("tab", BUTCHER + ROSENBROCK, ids=lambda t: t.name)
def test_order_is_not_higher(tab):
    """The stated orders are sharp: some condition of the next order fails, so the check can fail."""
    assert max(abs(r) for r in residuals(tab, tab.b, tab.order + 1).values()) > 1e-6
    if tab.embedded_order:
        assert max(abs(r) for r in residuals(tab, tab.b_hat, tab.embedded_order + 1).values()) > 1e-6


# --- stiff accuracy and L-stability ---

STIFF_Z = -1e6  # |R(z)| ~ c/|z| there for an L-stable method, ~1 for a merely A-stable one

@pytest.mark.parametrize("tab", ROSENBROCK, ids=lambda t: t.name)
def test_rosenbrock_stiffly_accurate(tab):
    """HW IV.7: alpha_sj + gamma_sj = b_j, and the embedded method is stiffly accurate at stage s-1."""
    np.testing.assert_allclose(tab.beta[-1], tab.b, atol=TOL)
    np.testing.assert_allclose(tab.beta[-2], tab.b_hat, atol=TOL)
    np.testing.assert_allclose(tab.alpha[-2:], 1.0, atol=TOL)
    # R(inf) = 1 - b beta^-1 1 = 0: L-stable.
    assert abs(1 - tab.b @ np.linalg.solve(tab.beta, np.ones(tab.stages))) < TOL
    assert abs(stability_function(tab, STIFF_Z)) < 1e-4


def test_kencarp4_structure():
    np.testing.assert_array_equal(KENCARP4.A[-1], KENCARP4.b)
    np.testing.assert_array_equal(np.diag(KENCARP4.A)[1:], 0.25)
    assert KENCARP4.explicit_first_stage and KENCARP4.stiffly_accurate and KENCARP4.adaptive
    assert abs(stability_function(KENCARP4, STIFF_Z)) < 1e-4


def test_reference_methods_stability():
    assert IMPLICIT_EULER.stiffly_accurate and TRAPEZOID.stiffly_accurate
    assert not IMPLICIT_EULER.adaptive and not TRAPEZOID.adaptive
    z = -3.0
    assert stability_function(IMPLICIT_EULER, z) == pytest.approx(1 / (1 - z), abs=TOL)
    assert stability_function(TRAPEZOID, z) == pytest.approx((1 + z / 2) / (1 - z / 2), abs=TOL)
    assert abs(stability_function(IMPLICIT_EULER, STIFF_Z)) < 1e-4
    assert stability_function(TRAPEZOID, STIFF_Z) == pytest.approx(-1.0, abs=1e-5)


# --- transformed form against original form ---

@pytest.mark.parametrize("tab", ROSENBROCK, ids=lambda t: t.name)
@pytest.mark.parametrize("z", [-0.5, -4.0, -100.0, 1.5, -2.0 + 3.0j, 0.3j])
def test_transformed_step_matches_stability_function(tab, z):
    """One step of the stated stage equation on y' = z y, h = 1, reproduces R(z) = 1 + z b (I - z beta)^-1 1."""
    _, y1 = rosenbrock_linear_step(tab, z, 1.0)
    assert y1 == pytest.approx(stability_function(tab, z), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("tab", ROSENBROCK, ids=lambda t: t.name)
def test_transformed_error_weights(tab):
    """``sum m_error_i U_i`` is the difference of the two solutions ``(b - b_hat) k``."""
    z, h = -2.0, 1.0
    U, _ = rosenbrock_linear_step(tab, z, h)
    k = np.linalg.solve(tab.Gamma, U)
    assert tab.m_error @ U == pytest.approx((tab.b - tab.b_hat) @ k, abs=1e-12)


# --- dense output ---

@pytest.mark.parametrize("tab", BUTCHER + ROSENBROCK, ids=lambda t: t.name)
@pytest.mark.parametrize("theta", THETAS)
def test_dense_output_order_conditions(tab, theta):
    assert max_residual(tab, dense_weights(tab, theta), DENSE_ORDER[tab.name], theta) < 1e-11


@pytest.mark.parametrize("tab", BUTCHER + ROSENBROCK, ids=lambda t: t.name)
def test_dense_output_endpoints(tab):
    np.testing.assert_allclose(dense_weights(tab, 1.0), tab.b, atol=1e-10)
    np.testing.assert_allclose(dense_weights(tab, 0.0), 0.0, atol=0.0)


@pytest.mark.parametrize("tab", ROSENBROCK, ids=lambda t: t.name)
def test_rosenbrock_dense_output_converges(tab):
    """Interpolant of one step on y' = -y, y(0) = 1 against exp(-theta h): local error O(h**(q+1))."""
    theta, hs = 0.37, (0.2, 0.1)
    errors = []
    for h in hs:
        U, y1 = rosenbrock_linear_step(tab, -1.0, h)
        errors.append(abs(rosenbrock_dense(tab, U, 1.0, y1, theta) - math.exp(-theta * h)))
    observed = math.log2(errors[0] / errors[1])
    assert observed > DENSE_ORDER[tab.name] + 1 - 0.3
