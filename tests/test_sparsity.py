"""Jacobians from a known sparsity pattern (pystiffsens.sparsity, pss.SparseRHS)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pystiffsens as pss
from pystiffsens.solvers import sparse_lu
from pystiffsens.sparsity import Sparsity, jacobian


def _random_pattern(n, density, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((n, n)) < density) | np.eye(n, dtype=bool)


@pytest.mark.parametrize("n, density, seed", [(1, 1.0, 0), (9, 0.2, 1), (30, 0.1, 2), (20, 0.6, 3)])
def test_colouring_is_valid_and_the_compressed_jacobian_equals_jacfwd(n, density, seed):
    mask = _random_pattern(n, density, seed)
    pattern = Sparsity(mask)
    colors = pattern.colors
    for c in range(pattern.n_colors):  # no row holds two columns of one colour
        assert np.all(mask[:, colors == c].sum(axis=1) <= 1)
    # the greedy colouring needs at least the densest row's count, and never more colours than columns
    assert mask.sum(axis=1).max() <= pattern.n_colors <= n
    C = np.random.default_rng(seed + 10).normal(size=(n, n)) * mask

    def f(x):  # f_i depends on x_j exactly where mask[i, j]
        return C @ jnp.tanh(x) + x * jnp.diag(C) * jnp.sum(C * x, axis=1) * 0.1

    x = jnp.linspace(-1.0, 2.0, n)
    np.testing.assert_allclose(jax.jit(jacobian, static_argnums=(0, 2))(f, x, pattern), jax.jacfwd(f)(x),
                               rtol=1e-14, atol=1e-15)
    # and its derivative, in both modes, is the derivative of jacfwd's
    for mode in (jax.jacfwd, jax.jacrev):
        np.testing.assert_allclose(jax.jit(mode(lambda x: jacobian(f, x, pattern)))(x),
                                   jax.jit(mode(jax.jacfwd(f)))(x), rtol=1e-13, atol=1e-14)


def test_patterns_compare_by_value_and_bad_patterns_are_refused():
    mask = _random_pattern(6, 0.3, 4)
    assert Sparsity(mask) == Sparsity(mask.astype(int)) and hash(Sparsity(mask)) == hash(Sparsity(mask.copy()))
    assert Sparsity(mask) != Sparsity(~mask)
    assert Sparsity(mask).T == Sparsity(mask.T)
    with pytest.raises(ValueError, match=r"non-empty square matrix; got shape \(3, 4\)"):
        Sparsity(np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="must be boolean"):
        Sparsity(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="pattern is 3 x 3, but the state has 2 entries"):
        jacobian(lambda x: x, jnp.ones(2), Sparsity(np.ones((3, 3), dtype=bool)))
    problem = pss.problems.get("robertson")
    with pytest.raises(ValueError, match="jac_sparsity is 2 x 2, but y0 has 3 entries"):
        problem.replace(rhs=pss.SparseRHS(problem.rhs, np.ones((2, 2), dtype=bool)))


N = 20
# A stiff chain: diffusion between neighbours, quadratic decay, a source; tridiagonal Jacobian. Long enough
# for the sparse LU (pystiffsens.solvers.sparse_lu), so the solves with the pattern also factorise sparsely.
CHAIN = np.eye(N, dtype=bool) | np.eye(N, k=1, dtype=bool) | np.eye(N, k=-1, dtype=bool)


def _chain_rhs(t, y, p):
    inner = jnp.concatenate([y[1:2] - y[:1], y[2:] - 2 * y[1:-1] + y[:-2], y[-2:-1] - y[-1:]])
    return p["D"] * inner - p["k"] * y**2 + p["s"] * jnp.exp(-t)


def _chain(rhs):
    params = dict(D=jnp.float64(80.0), k=jnp.float64(3.0), s=jnp.linspace(0.5, 1.5, N))
    return pss.Problem(rhs, jnp.linspace(1.0, 2.0, N), (0.0, 4.0), params, saveat=np.linspace(0.0, 4.0, 5))


@pytest.mark.parametrize(
    "solver, sensitivity",
    [
        ("Rodas5P", "InterpolatingAdjoint"),  # the Jacobian inside the method; the adjoint's -J^T pattern
        ("Rodas5P", "GaussAdjoint"),  # a plain backward right-hand side, time-reversed
        ("FBDF", "ReverseDiffAdjoint"),  # Newton's implicit-function solve, transposed
        ("RadauIIA5", "ForwardDiffSensitivity"),  # the tiled pattern of coupled stages, differentiated forward
    ],
)
def test_a_sparse_rhs_gives_the_solution_and_gradient_of_the_dense_one(solver, sensitivity):
    dense, sparse = _chain(_chain_rhs), _chain(pss.SparseRHS(_chain_rhs, CHAIN))
    assert sparse.rhs.jac_sparsity.n_colors == 3
    assert sparse_lu.elimination(sparse.rhs.jac_sparsity) is not None
    a, b = pss.solve(dense, solver), pss.solve(sparse, solver)
    np.testing.assert_allclose(b.ys, a.ys, rtol=1e-11)  # the two LUs round differently
    ga, gb = pss.gradient(dense, solver, sensitivity), pss.gradient(sparse, solver, sensitivity)
    assert gb.status == pss.ReturnCode.Success
    flat = [np.concatenate([np.ravel(g.grad[key]) for key in sorted(g.grad)]) for g in (ga, gb)]
    np.testing.assert_allclose(flat[1], flat[0], rtol=1e-11, atol=1e-13 * np.linalg.norm(flat[0]))


def test_the_pattern_is_what_the_solver_uses():
    """Rosenbrock methods use the Jacobian inside the formula: a pattern that drops the couplings changes the
    solution (by a W-method's error, well above the 1e-13 to which the right pattern, and its sparse LU,
    reproduce the dense solve with Rodas5P), so the solver formed its Jacobian from the pattern."""
    exact = pss.solve(_chain(_chain_rhs), "Rodas5P")
    wrong = pss.solve(_chain(pss.SparseRHS(_chain_rhs, np.eye(N, dtype=bool))), "Rodas5P")
    assert wrong.status == pss.ReturnCode.Success
    assert np.max(np.abs(wrong.ys - exact.ys) / np.abs(exact.ys)) > 1e-11
