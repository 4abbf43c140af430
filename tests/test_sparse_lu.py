"""The sparse LU of iteration matrices with a known pattern (pystiffsens.solvers.sparse_lu) and its solves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pystiffsens.solvers import linear, sparse_lu
from pystiffsens.sparsity import Sparsity


def _pattern(n, density, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((n, n)) < density) | np.eye(n, dtype=bool)


def _matrix(mask, seed, dominance=3.0):
    rng = np.random.default_rng(seed)
    n = mask.shape[0]
    return jnp.asarray(np.where(mask, rng.standard_normal((n, n)), 0.0) + dominance * np.sqrt(n) * np.eye(n))


def _unpivoted_lu(a):
    """Doolittle's elimination without row exchanges, in NumPy: ``L \\ U`` packed in one matrix."""
    a = np.array(a, dtype=a.dtype)
    for k in range(a.shape[0] - 1):
        a[k + 1 :, k] /= a[k, k]
        a[k + 1 :, k + 1 :] -= np.outer(a[k + 1 :, k], a[k, k + 1 :])
    return a


@pytest.mark.parametrize("n, density, seed", [(16, 0.15, 0), (40, 0.06, 1), (60, 0.03, 2)])
def test_factors_are_the_lu_of_the_permuted_matrix_within_the_planned_fill(n, density, seed):
    mask = _pattern(n, density, seed)
    planned = sparse_lu.Elimination(Sparsity(mask))
    assert sorted(planned.order) == list(range(n)) and np.array_equal(planned.order[planned.inverse_order], np.arange(n))
    a = np.asarray(_matrix(mask, seed))
    exact = _unpivoted_lu(a[np.ix_(planned.order, planned.order)])
    filled = np.zeros((n, n), dtype=bool)
    filled[planned.rows, planned.cols] = True
    assert np.all(exact[~filled] == 0.0)  # the symbolic factorisation holds every nonzero of the factors
    np.testing.assert_allclose(jax.jit(planned.factor)(jnp.asarray(a)), exact, rtol=1e-12, atol=1e-14)
    assert len(planned.levels) < n  # some pivots were eliminated together


def test_the_ordering_keeps_an_arrowhead_free_of_fill():
    """An arrowhead with its hub first fills completely in the natural order; the minimum-degree order puts the hub
    last, so the factors have the pattern's own nonzeros and nothing more."""
    n = 20
    mask = np.eye(n, dtype=bool)
    mask[0, :] = mask[:, 0] = True
    planned = sparse_lu.Elimination(Sparsity(mask))
    assert planned.fill == mask.sum()
    assert planned.order[-1] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_solves_match_a_dense_solve_for_vectors_columns_and_lanes(dtype):
    mask = _pattern(30, 0.1, 3)
    pattern = Sparsity(mask)
    assert sparse_lu.elimination(pattern) is not None
    a = _matrix(mask, 4).astype(dtype)
    if dtype == np.complex128:
        a = a + 1j * jnp.where(mask, 0.5, 0.0)
    b = jnp.asarray(np.random.default_rng(5).standard_normal((30, 3))).astype(dtype)
    lu = jax.jit(lambda m: linear.lu_factor(m, sparsity=pattern))(a)
    assert lu.columns is not None
    np.testing.assert_allclose(lu.solve(b[:, 0]), np.linalg.solve(a, b[:, 0]), rtol=1e-12)
    np.testing.assert_allclose(lu.solve(b), np.linalg.solve(a, b), rtol=1e-12)
    lanes = jnp.stack([a, 2.0 * a])
    solved = jax.jit(jax.vmap(lambda m, v: linear.lu_factor(m, sparsity=pattern).solve(v)))(lanes, jnp.stack([b[:, 0]] * 2))
    np.testing.assert_allclose(solved, np.linalg.solve(lanes, np.stack([b[:, 0]] * 2)[..., None])[..., 0], rtol=1e-12)


def test_first_and_second_derivatives_equal_the_dense_lus():
    """Solves are differentiated as solves (first derivatives), and second derivatives of a reverse-mode gradient pass
    through the factorisation. The matrix is zero outside its pattern, values and tangents alike, as the solvers form it
    (:func:`pystiffsens.sparsity.jacobian`)."""
    mask = _pattern(24, 0.12, 6)
    pattern, where = Sparsity(mask), jnp.asarray(mask)
    rng = np.random.default_rng(8)
    a, b = _matrix(mask, 7), jnp.asarray(rng.standard_normal(24))
    direction = (jnp.asarray(rng.standard_normal((24, 24))), jnp.asarray(rng.standard_normal(24)))

    def loss(m, v, sparsity):
        return jnp.sum(linear.lu_factor(jnp.where(where, m, 0.0), sparsity=sparsity).solve(v) ** 2)

    def hessian_times_direction(m, v, sparsity):
        gradient = jax.grad(loss, argnums=(0, 1))
        return jax.jvp(lambda m, v: gradient(m, v, sparsity), (m, v), direction)[1]

    for derivative in (jax.grad(loss, argnums=(0, 1)), hessian_times_direction):
        sparse, dense = jax.jit(derivative, static_argnums=2)(a, b, pattern), derivative(a, b, None)
        for s, d in zip(jax.tree_util.tree_leaves(sparse), jax.tree_util.tree_leaves(dense)):
            np.testing.assert_allclose(s, d, rtol=1e-10, atol=1e-13 * float(jnp.max(jnp.abs(d))))


def test_a_pivot_that_grows_the_factors_gives_nan_factors():
    """Without row exchanges a small pivot is used as it is; where the factors grow past the limit they are NaN, so the
    step that formed the matrix is rejected and retried with a smaller one (pystiffsens.integrate)."""
    mask = _pattern(20, 0.15, 9)
    planned = sparse_lu.Elimination(Sparsity(mask))
    a = np.array(_matrix(mask, 10))
    first = planned.order[0]
    assert np.isfinite(planned.factor(jnp.asarray(a))).all()
    assert (planned.rows[planned.cols == 0] > 0).any(), "the first pivot should have multipliers below it"
    for pivot in (0.0, 1e-12):
        small = a.copy()
        small[first, first] = pivot
        assert np.isnan(planned.factor(jnp.asarray(small))).any()
    assert sparse_lu.PIVOT_GROWTH_LIMIT < 1e12


def test_small_and_dense_patterns_keep_the_dense_lu():
    assert sparse_lu.elimination(Sparsity(_pattern(sparse_lu.MIN_SIZE - 1, 0.1, 11))) is None
    assert sparse_lu.elimination(Sparsity(np.ones((30, 30), dtype=bool))) is None
    mask = _pattern(30, 0.05, 12)
    assert sparse_lu.elimination(Sparsity(mask)) is sparse_lu.elimination(Sparsity(mask.copy()))  # planned once
    a = _matrix(np.ones((30, 30), dtype=bool), 13)
    assert linear.lu_factor(a, sparsity=Sparsity(np.ones((30, 30), dtype=bool))).columns is None
