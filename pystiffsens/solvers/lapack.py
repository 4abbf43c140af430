"""The LAPACK calls of the dense LU (``getrf``, ``trsm``), given to jaxlib in batches it runs on the calling thread.

jaxlib 0.10.0 to 0.11.0 parallelise a batched LAPACK call over XLA:CPU's intra-op thread pool
(JAX 0.10.0 changelog: "LAPACK operations are now parallelized along the batch dimension on
CPU"): when the batch size times a cost per matrix (``n^3`` for ``getrf``, ``n^2 k`` for ``trsm``
with ``k`` right-hand sides, three times that in complex arithmetic) reaches
:data:`PARALLEL_BATCH_COST`, the call schedules chunks of the batch on the pool and blocks its
thread until they are done (``GetLapackBatchChunkSize`` and ``ParallelBatchMap`` in
``jaxlib/cpu/lapack_kernels.cc``). XLA:CPU's thunk executor runs independent operations of a
program on that same pool, so when as many such calls start at once as the pool has threads
(two on a 2-core machine), every thread waits for chunks that no thread is free to run, and the
program never returns. That is what kept Smith_BMCSystBiol2013's forward-mode gradient from
finishing: in a vmapped batch of 25 of its conditions (105 states), each stage solves for the
state (one column, a batch cost of 25 * 105^2 = 275 625) and, independently, for the 16 tangents;
the program hung at zero CPU with both pool threads in ``lapack_dtrsm_ffi``'s
``ParallelBatchMap`` (gdb), while 16 conditions (a state solve of 176 400, run on its caller's
thread) ran. JAX disabled the parallel path in its open-source builds after 0.11.0 (commit
859992407d, 2026-07-21: "Don't try to parallelize LAPACK kernels in opensource builds").

So under ``jax.vmap``, in programs lowered for the CPU, the calls here hand LAPACK chunks of at most
``(PARALLEL_BATCH_COST - 1) // cost`` matrices (:func:`_batch_safe`): up to
:data:`MAX_UNROLLED_CHUNKS` chunks as calls side by side, more one after another (``lax.map``); a
batch that fits in one chunk is the plain batched call it was, and so is the batch on other backends
(``lax.platform_dependent``). Right-hand sides that share one matrix across a map (a forward-mode
step's tangents) are the columns of one call, as ``jax.lax.linalg``'s batching does. On POLLU (20
states, 25 parameters) a vmapped batch of 64 forward-mode gradients took 447-454 ms against 592-599 ms
with jaxlib's parallel calls; single calls and a batch of 64 solves are unchanged
(``benchmarks/bench_lapack_batches.py``, benchmarks/README.md, section 8). ``custom_vmap`` functions
have no derivative rules of their own, so each triangular solve is a ``lax.custom_linear_solve``
(its transpose is the solve with the transposed factor, its derivative with respect to the factor
follows from the matrix product) and the factorisation a ``jax.custom_jvp`` with the derivative of
``getrf``'s factors.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_batching import custom_vmap

MAX_UNROLLED_CHUNKS = 8
"""A batch of at most this many chunks is split by static slices into calls side by side; a larger one by
``lax.map``."""

PARALLEL_BATCH_COST = 200_000
"""Batch size times cost per matrix from which jaxlib 0.10-0.11 split a LAPACK call over the thread pool
(``kMinWorkPerTask`` in ``jaxlib/cpu/lapack_kernels.cc``)."""


@jax.custom_jvp
def lu(matrix):
    """``(factors, permutation)`` with ``matrix[permutation] = L U``, ``L`` unit lower and ``U`` packed in
    ``factors`` (``getrf``)."""
    return _getrf(matrix)


@lu.defjvp
def _lu_jvp(primals, tangents):
    """The factors' tangent: with ``X = L^-1 dA[permutation] U^-1``, ``dL = L tril(X, -1)`` and ``dU = triu(X) U``."""
    (matrix,), (dmatrix,) = primals, tangents
    factors, permutation = lu(matrix)
    lower_x = triangular_solve(factors, dmatrix[permutation], lower=True)
    x = triangular_solve(factors, lower_x.T, lower=False, transpose=True).T
    unit_lower = jnp.tril(factors, -1) + jnp.eye(factors.shape[-1], dtype=factors.dtype)
    dfactors = unit_lower @ jnp.tril(x, -1) + jnp.triu(x) @ jnp.triu(factors)
    return (factors, permutation), (dfactors, jnp.zeros(permutation.shape, jax.dtypes.float0))


def lu_solve(factors, rhs):
    """``U^-1 L^-1 rhs`` for the packed ``factors`` of :func:`lu` and a matrix ``rhs`` (a column per right-hand
    side)."""
    return triangular_solve(factors, triangular_solve(factors, rhs, lower=True), lower=False)


def triangular_solve(factors, rhs, *, lower: bool, transpose: bool = False):
    """``T^-1 rhs`` (``T^-T rhs`` if ``transpose``) with ``T`` the unit lower (``lower``) or the upper triangle of
    ``factors``."""
    triangle = jnp.tril(factors, -1) + jnp.eye(factors.shape[-1], dtype=factors.dtype) if lower else jnp.triu(factors)
    matrix = triangle.T if transpose else triangle
    return lax.custom_linear_solve(
        lambda x: matrix @ x, rhs,
        solve=lambda _, b: _trsm(factors, b, lower, transpose),
        transpose_solve=lambda _, b: _trsm(factors, b, lower, not transpose))


def _cost(dtype, flops: int) -> int:
    return 3 * flops if jnp.issubdtype(dtype, jnp.complexfloating) else flops


def _batch_safe(fun, cost, shared_first=None):
    """``fun`` (LAPACK on matrices with any leading batch dimensions, the same in every argument), called on batches of
    at most ``(PARALLEL_BATCH_COST - 1) // cost(*args)`` matrices at a time, under any number of ``jax.vmap``.

    A ``jax.vmap`` over the result adds a leading batch dimension and calls it again, so the limit holds for the
    whole batch of nested maps, not only the innermost. A batch over the limit runs in chunks: up to
    :data:`MAX_UNROLLED_CHUNKS` of them side by side, more one after another. ``shared_first(call, axis_size,
    *args)``, where given, maps the batch when only the first argument (the matrix) is the same in every lane.
    """

    @custom_vmap
    def call(*args):
        batch_shape = args[0].shape[:-2]
        size = math.prod(batch_shape)
        per_call = max(1, (PARALLEL_BATCH_COST - 1) // cost(*args))
        if size <= per_call:
            return fun(*args)

        def in_chunks(*operands):
            flat = tuple(x.reshape(size, *x.shape[-2:]) for x in operands)
            if size <= MAX_UNROLLED_CHUNKS * per_call:  # a few calls side by side: no loop to copy chunks in and out
                chunks = [call(*(x[start:start + per_call] for x in flat)) for start in range(0, size, per_call)]
                out = jax.tree.map(lambda *parts: jnp.concatenate(parts), *chunks)
            else:
                out = lax.map(lambda one: call(*one), flat, batch_size=per_call)
            return jax.tree.map(lambda x: x.reshape(*batch_shape, *x.shape[1:]), out)

        # The thread pool is XLA:CPU's: another backend (cuSOLVER's batched calls) gets the whole batch at once.
        return lax.platform_dependent(*args, cpu=in_chunks, default=fun)

    @call.def_vmap
    def batched(axis_size, in_batched, *args):
        if shared_first is not None and not in_batched[0] and all(in_batched[1:]):
            return shared_first(call, axis_size, *args), True
        args = tuple(x if b else jnp.broadcast_to(x, (axis_size, *x.shape)) for x, b in zip(args, in_batched))
        out = call(*args)
        return out, jax.tree.map(lambda _: True, out)

    return call


def _lapack_lu(matrix):
    factors, _, permutation = lax.linalg.lu(matrix)
    return factors, permutation


_getrf = _batch_safe(_lapack_lu, lambda matrix: _cost(matrix.dtype, matrix.shape[-1] ** 3))


def _trsm(factors, rhs, lower: bool, transpose: bool):
    return _TRSM[lower, transpose](factors, rhs)


def _trsm_call(lower: bool, transpose: bool):
    def trsm(factors, rhs):
        return lax.linalg.triangular_solve(factors, rhs, left_side=True, lower=lower, transpose_a=transpose,
                                           unit_diagonal=lower)

    return _batch_safe(trsm, lambda factors, rhs: _cost(rhs.dtype, rhs.shape[-2] ** 2 * rhs.shape[-1]),
                       shared_first=_columns_of_one_solve)


def _columns_of_one_solve(call, axis_size: int, factors, rhs):
    """Right-hand sides of every lane solved with the one ``factors`` as columns of a single ``trsm``, as
    ``jax.lax.linalg.triangular_solve``'s own batching rule does (a forward-mode step's tangents, for one): not a
    batch of copies of the factors."""
    columns = jnp.moveaxis(rhs, 0, -1)  # lanes last: (..., n, k, lanes)
    out = call(factors, columns.reshape(*columns.shape[:-2], -1))
    return jnp.moveaxis(out.reshape(columns.shape), -1, 0)


_TRSM = {(lower, transpose): _trsm_call(lower, transpose) for lower in (True, False) for transpose in (True, False)}
