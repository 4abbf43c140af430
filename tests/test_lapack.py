"""The dense LU's LAPACK calls (pystiffsens.solvers.lapack): the values and derivatives of jax.lax.linalg, in batches
that jaxlib 0.10-0.11 run on the calling thread instead of waiting on its thread pool (where they could deadlock)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pystiffsens as pss
from pystiffsens.solvers import lapack

RNG = np.random.default_rng(3)


def _solve(matrix, rhs):
    factors, permutation = lapack.lu(matrix)
    return lapack.lu_solve(factors, rhs[permutation])


def _lapack_costs(lowered) -> list[tuple[str, int, int]]:
    """``(target, batch size, batch size times jaxlib's cost per matrix)`` of every LAPACK call in a lowered program
    (``n^3`` for getrf, ``n^2 k`` for trsm, three times that in complex arithmetic:
    ``jaxlib/cpu/lapack_kernels.cc``)."""
    calls = []
    for line in lowered.as_text().splitlines():
        target = re.search(r"custom_call @(lapack_\w+_ffi)", line)
        if target:
            operands = line.rsplit(" : (", 1)[1].split(") -> ")[0]
            shapes = [tuple(int(d) for d in dims.split("x")) for dims in re.findall(r"tensor<([\dx]+)x", operands)]
            *batch, rows, cols = shapes[1] if "trsm" in target.group(1) else shapes[0]
            per_matrix = rows**3 if "getrf" in target.group(1) else rows * rows * cols
            complex_factor = 3 if target.group(1).startswith(("lapack_z", "lapack_c")) else 1
            size = int(np.prod(batch, dtype=int))
            calls.append((target.group(1), size, size * per_matrix * complex_factor))
    return calls


def test_values_and_derivatives_are_those_of_jax_linalg():
    matrix = jnp.asarray(RNG.normal(size=(6, 6))) + 3 * jnp.eye(6)
    rhs = jnp.asarray(RNG.normal(size=(6, 2)))
    np.testing.assert_allclose(_solve(matrix, rhs), jnp.linalg.solve(matrix, rhs), rtol=1e-13)
    tangent = jnp.asarray(RNG.normal(size=(6, 6)))
    ours = jax.jvp(lambda a: lapack.lu(a)[0], (matrix,), (tangent,))[1]
    theirs = jax.jvp(lambda a: jax.lax.linalg.lu(a)[0], (matrix,), (tangent,))[1]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    for order in (jax.grad, jax.hessian):  # reverse mode, and forward over reverse
        ours = order(lambda a: jnp.sum(_solve(a, rhs) ** 3))(matrix)
        theirs = order(lambda a: jnp.sum(jnp.linalg.solve(a, rhs) ** 3))(matrix)
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.complex128])
def test_a_batch_over_the_threshold_runs_in_chunks_under_nested_vmaps(dtype):
    n, k, lanes = 25, 17, 40  # getrf 25^3 and trsm 25^2 * 17 per matrix: 12 and 18 matrices a call (4 and 6 in complex)
    matrices = jnp.asarray(RNG.normal(size=(lanes, n, n)) + 5 * np.eye(n), dtype)
    rhs = jnp.asarray(RNG.normal(size=(lanes, n, k)), dtype)
    expected = jnp.linalg.solve(matrices, rhs)
    nested = jax.vmap(jax.vmap(_solve))
    shaped = (matrices.reshape(4, 10, n, n), rhs.reshape(4, 10, n, k))
    for fn, args in [(jax.vmap(_solve), (matrices, rhs)), (nested, shaped)]:
        np.testing.assert_allclose(np.reshape(fn(*args), expected.shape), expected, rtol=1e-11)
        calls = _lapack_costs(jax.jit(fn).lower(*args))
        assert {target[8:] for target, _, _ in calls} == {"getrf_ffi", "trsm_ffi"}
        assert all(cost < lapack.PARALLEL_BATCH_COST for _, _, cost in calls), calls
    batch = jax.vmap(jax.grad(lambda a, b: jnp.sum(jnp.abs(_solve(a, b)) ** 2)))(matrices, rhs)
    single = jax.grad(lambda a, b: jnp.sum(jnp.abs(_solve(a, b)) ** 2))(matrices[0], rhs[0])
    np.testing.assert_allclose(batch[0], single, rtol=1e-12)


def test_vmapped_solves_and_forward_mode_gradients_keep_lapack_batches_below_the_threshold():
    """POLLU (20 states) over 64 rate constants: getrf's 20^3 per lane passes jaxlib's threshold from 25 lanes on."""
    problem = pss.problems.get("pollution")
    scales = jnp.linspace(0.5, 1.5, 64)

    def last_state(scale, solver, sensitivity):
        params = {"k": problem.params["k"] * scale}
        return pss.solve(problem, solver, sensitivity=sensitivity, params=params, rtol=1e-6, atol=1e-8).ys[-1, 0]

    for solver, sensitivity in [("RadauIIA5", None), ("Rodas5P", "ForwardDiffSensitivity")]:
        fn = jax.vmap(jax.grad(last_state) if sensitivity else last_state, in_axes=(0, None, None))
        calls = _lapack_costs(jax.jit(fn, static_argnums=(1, 2)).lower(scales, solver, sensitivity))
        assert any("getrf" in target and size > 1 for target, size, _ in calls), calls
        # A single matrix, whatever its cost, runs on the calling thread (a 60 x 60 one of RadauIIA5's, one a call).
        assert all(cost < lapack.PARALLEL_BATCH_COST or size == 1 for _, size, cost in calls), calls


def test_other_backends_get_the_whole_batch():
    """The chunks are for XLA:CPU's thread pool: lowered for CUDA (jax.export, cross-platform), getrf takes all 40
    lanes."""
    matrices = jnp.asarray(RNG.normal(size=(40, 25, 25)) + 5 * np.eye(25))
    rhs = jnp.asarray(RNG.normal(size=(40, 25, 17)))
    text = jax.export.export(jax.jit(jax.vmap(_solve)), platforms=["cuda"])(matrices, rhs).mlir_module()
    getrf = [line for line in text.splitlines() if "custom_call @cusolver_getrf" in line]
    assert len(getrf) == 1 and "tensor<40x25x25xf64>" in getrf[0].rsplit(" : (", 1)[1]


def test_right_hand_sides_of_one_matrix_are_columns_of_one_solve():
    """Forward mode vmaps a solve over its tangents with one matrix: one trsm with a column per tangent, as
    jax.lax.linalg's batching rule gives, not a batch of copies of the factors (POLLU's FBDF forward-mode gradient took
    17.7-19.3 ms that way against 14.7-15.5 ms)."""
    matrix = jnp.asarray(RNG.normal(size=(12, 12))) + 4 * jnp.eye(12)
    rhs = jnp.asarray(RNG.normal(size=(12, 3)))
    tangents = jnp.asarray(RNG.normal(size=(30, 12, 3)))
    columns = jax.vmap(lambda t: jax.jvp(lambda b: _solve(matrix, b), (rhs,), (t,))[1])
    np.testing.assert_allclose(columns(tangents), jnp.linalg.solve(matrix, tangents), rtol=1e-12)
    trsm = [line.rsplit(" : (", 1)[1] for line in jax.jit(columns).lower(tangents).as_text().splitlines()
            if "custom_call @lapack_dtrsm" in line]
    assert trsm and all(operands.startswith("tensor<12x12xf64>, tensor<12x90xf64>") for operands in trsm), trsm
