"""LU factorisation of an iteration matrix, factored once and reused by every solve with it.

``jax.scipy.linalg.lu_solve`` turns the pivot vector into a permutation on every call (a
small loop of its own); a Rosenbrock step solves with one matrix once per stage, so
:func:`lu_factor` keeps the permutation and :meth:`LU.solve` is one gather and two
triangular solves. A solve is differentiated as a solve, ``d(A^-1 b) = A^-1 (db - dA x)``
with the same factors (as lineax's ``linear_solve``), not through the factorisation. Where
the matrix is a function of other values (an iteration matrix ``I/delta - coef J(t, y, p)``),
:func:`lu_factor` takes that function as a :class:`MatrixProduct`, and ``dA x`` is one
forward-mode product of it, never the tangent of the formed matrix (lineax's
``JacobianLinearOperator`` does the same).

For systems of at most :data:`SUBSTITUTION_MAX_SIZE` unknowns the triangular solves are
written-out forward and back substitution, element by element, multiplying by the pivots'
reciprocals (XLA gives each division a kernel of its own), which XLA fuses into a few kernels:
XLA's CPU ``triangular-solve`` costs far more than its arithmetic on such small matrices, in a
vmapped batch above all (a batch of 32 ROBER gradients, Rodas5P, rtol 1e-8, ran
in 50 ms with it and 22 ms with substitution). Up to :data:`ELIMINATION_MAX_SIZE` unknowns the
factorisation is written-out Gaussian elimination too, since LAPACK's ``getrf`` comes with a
loop of its own per factorisation (:func:`_eliminate`; benchmarks/README.md, section 6). Larger
systems call LAPACK through :mod:`.lapack`, which hands a vmapped batch to jaxlib in chunks that
never wait on its thread pool (jaxlib 0.10-0.11 could deadlock there).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..sparsity import Sparsity
from . import lapack, sparse_lu

SUBSTITUTION_MAX_SIZE = 8
"""Largest system solved by written-out substitution instead of LAPACK's ``trsm`` (:func:`.lapack.lu_solve`)."""

ELIMINATION_MAX_SIZE = 4
"""Largest system factorised by written-out elimination (:func:`_eliminate`) instead of LAPACK's ``getrf``.

Measured with Rodas5P (solve and gradients) on ``bench_scaling.py``'s dense stiff systems of 3 to 8
states, HIRES (8) and the PEtab models Boehm and Elowitz (8): the elimination is faster up to 4
unknowns, about even at 6 and slower at 5 and 8 (HIRES's solve 1.99 ms against 1.63 ms, Boehm's
InterpolatingAdjoint gradient 39 ms against 26 ms), where its operations column by column cost
more than ``getrf`` and its permutation loop (benchmarks/README.md, section 6)."""


class LU(NamedTuple):
    """``P A = L U`` with ``L`` (unit lower) and ``U`` packed in ``factors``; ``permutation`` is ``P`` as indices.

    ``matrix`` is ``A`` itself: a solve is differentiated with respect to it and its right-hand
    side, ``d(A^-1 b) = A^-1 (db - dA A^-1 b)``, with the same factors (:func:`_solve`). First
    derivatives never pass through the factorisation (XLA drops its unused tangent); second
    derivatives of a reverse-mode gradient do, where the transposed solve reads the factors.
    ``reciprocal_pivots`` is ``1 / diag(U)`` as a column, formed once for the written-out back
    substitution of systems of at most :data:`SUBSTITUTION_MAX_SIZE` unknowns (None above).
    ``product``, where given, is ``A`` as a :class:`MatrixProduct` of its own inputs, and the
    solve is differentiated with respect to those inputs instead of ``matrix`` (:func:`_solve_product`).
    ``columns``, where given, says the factors are those of ``P A P^T`` (a sparse LU with its pivot
    order fixed in advance, :mod:`.sparse_lu`): it is the inverse of ``permutation``, which puts
    the solution back in ``A``'s order.
    """

    factors: Any
    permutation: Any
    matrix: Any
    reciprocal_pivots: Any = None
    product: Any = None
    columns: Any = None

    def solve(self, b):
        """``A^{-1} b`` for a vector ``b``, or for each column of a matrix ``b``."""
        factors = (self.factors, self.permutation, self.reciprocal_pivots, self.columns)
        if self.product is not None:
            return _solve_product(self.product.fn, self.product.operands, *factors, b)
        return _solve(self.matrix, *factors, b)


@jax.tree_util.register_pytree_node_class
class MatrixProduct:
    """A matrix as the function ``x -> fn(operands, x)`` of the values it is formed from.

    ``operands`` is a pytree of arrays (everything the matrix depends on: time, state,
    parameters, step size); ``fn`` closes over no traced value (:func:`matrix_product` makes
    sure of it), so that derivatives with respect to ``operands`` are all of the matrix's.
    """

    def __init__(self, fn, operands):
        self.fn, self.operands = fn, operands

    def tree_flatten(self):
        return (self.operands,), self.fn

    @classmethod
    def tree_unflatten(cls, fn, children):
        return cls(fn, children[0])


def matrix_product(fn, operands, example) -> MatrixProduct:
    """The :class:`MatrixProduct` ``x -> fn(operands, x)``, with the traced values ``fn`` closes over moved into its operands.

    ``example`` is a vector of the size and dtype of the ``x`` it will be applied to
    (``jax.closure_convert``).
    """
    converted, consts = jax.closure_convert(fn, operands, example)
    return MatrixProduct(lambda ops, x: converted(ops[0], x, *ops[1]), (operands, tuple(consts)))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _solve_product(fn, operands, factors, permutation, reciprocal_pivots, columns, b):
    """``A^-1 b`` by the factors of ``A = fn(operands, .)``; its tangent is another solve with them.

    ``d(A^-1 b) = A^-1 (db - dA x)``, with ``dA x`` the forward-mode derivative of ``fn(operands, x)``
    with respect to ``operands``: one product per tangent, where the tangent of the formed matrix
    costs a Jacobian's worth of products per tangent (one per colour of its sparsity pattern,
    one per state without one) and a dense matrix product.
    """
    return _apply_factors(factors, permutation, reciprocal_pivots, columns, b)


@_solve_product.defjvp
def _solve_product_jvp(fn, primals, tangents):
    operands, *factors, b = primals
    d_operands, db = tangents[0], tangents[-1]
    x = _solve_product(fn, *primals)  # through _solve_product again, so that higher derivatives use this rule too
    _, d_product = jax.jvp(lambda ops: fn(ops, x), (operands,), (d_operands,))
    return x, _solve_product(fn, operands, *factors, db - d_product)


@jax.custom_jvp
def _solve(matrix, factors, permutation, reciprocal_pivots, columns, b):
    """``matrix^-1 b`` by the factors of ``matrix``; its tangent is another solve with them (:meth:`LU.solve`)."""
    return _apply_factors(factors, permutation, reciprocal_pivots, columns, b)


@_solve.defjvp
def _solve_jvp(primals, tangents):
    matrix, *factors, b = primals
    dmatrix, db = tangents[0], tangents[-1]
    x = _solve(*primals)  # through _solve again, so that higher derivatives use this rule too
    return x, _solve(matrix, *factors, db - _product(dmatrix, x))


def _product(matrix, x):
    """``matrix @ x``: :func:`fused_matmul` on small systems, a ``dot`` on larger ones."""
    return matrix @ x if matrix.shape[-1] > SUBSTITUTION_MAX_SIZE else fused_matmul(matrix, x)


def fused_matmul(a, b):
    """``a @ b`` (``b`` a vector or a matrix) as a sum over the inner dimension, which XLA fuses into one kernel.

    XLA:CPU runs each ``dot`` as a call of its own, which costs more than the arithmetic when the
    inner dimension is a handful of entries (a 3 x 3 solve's tangent, BDF's 6 x 6 rescaling of its
    differences: benchmarks/README.md, section 6). For small inner dimensions only: the sum is
    written out term by term.
    """
    terms = [a[:, k] * b[k] if b.ndim == 1 else a[:, k][:, None] * b[k][None, :] for k in range(a.shape[1])]
    return functools.reduce(lambda x, y: x + y, terms)


def _apply_factors(factors, permutation, reciprocal_pivots, columns, b):
    """``U^-1 L^-1 P b``: written-out substitution on small systems, LAPACK's ``trsm`` on larger ones; its rows
    put back by ``columns`` where the factors are of ``P A P^T``."""
    vector = b.ndim == 1
    rhs = b[permutation][:, None] if vector else b[permutation]
    if reciprocal_pivots is not None:
        x = _substitute(factors, reciprocal_pivots, rhs)
    else:
        x = lapack.lu_solve(factors, rhs)
    if columns is not None:
        x = x[columns]
    return x[:, 0] if vector else x


def _substitute(factors, reciprocal_pivots, rhs):
    """``U^{-1} L^{-1} rhs`` by forward (unit ``L``) then back substitution, one row at a time.

    Back substitution multiplies by the reciprocals of ``U``'s diagonal, formed once per
    factorisation: XLA gives each division a kernel of its own, where the products fuse with
    the rest of a solve. The solution passes an optimisation barrier: without the divisions
    XLA duplicated the substitution's products into every fusion that reads them, and the
    reverse-mode transpose reads them many times, so HIRES's discrete-adjoint gradient (8
    states) took 17.5-19 ms instead of 7.5-7.9 ms (``benchmarks/bench_problem_times.py``,
    benchmarks/README.md section 6).
    """
    n = factors.shape[-1]
    y: list = []
    for i in range(n):
        row = rhs[i]
        for j in range(i):
            row = row - factors[i, j] * y[j]
        y.append(row)
    x: list = [None] * n
    for i in reversed(range(n)):
        row = y[i]
        for j in range(i + 1, n):
            row = row - factors[i, j] * x[j]
        x[i] = row * reciprocal_pivots[i]
    return lax.optimization_barrier(jnp.stack(x))


def lu_factor(matrix, product: MatrixProduct | None = None, sparsity: Sparsity | None = None) -> LU:
    """The LU factorisation of a square ``matrix``: with partial pivoting, or sparse with its pivots fixed in advance.

    ``product``: ``matrix`` as a function of its own inputs (:func:`matrix_product`), for
    derivatives of solves with it (:class:`LU`). ``sparsity``: the pattern of ``matrix`` (its
    diagonal is taken as nonzero), where known; ``matrix`` must be zero outside it, values and
    derivatives alike, as :func:`~pystiffsens.sparsity.jacobian` forms a Jacobian. Large sparse
    patterns are factorised by :mod:`.sparse_lu` (:func:`.sparse_lu.elimination` says which), all
    others densely as below.

    Real or complex: :class:`~pystiffsens.solvers.FIRK` factorises one complex matrix per
    complex-conjugate pair of eigenvalues, and both solve paths work unchanged in complex arithmetic.
    Systems of at most :data:`ELIMINATION_MAX_SIZE` unknowns are factorised by written-out
    Gaussian elimination (:func:`_eliminate`), larger ones by LAPACK's ``getrf`` (:func:`.lapack.lu`, which
    keeps vmapped batches from waiting on jaxlib's thread pool).
    """
    planned = sparse_lu.elimination(sparsity) if sparsity is not None else None
    if planned is not None:
        return LU(planned.factor(matrix), planned.order, matrix, None, product, planned.inverse_order)
    if matrix.shape[-1] <= ELIMINATION_MAX_SIZE:
        factors, permutation = _eliminate(matrix)
    else:
        factors, permutation = lapack.lu(matrix)
    small = matrix.shape[-1] <= SUBSTITUTION_MAX_SIZE
    return LU(factors, permutation, matrix, 1.0 / jnp.diagonal(factors)[:, None] if small else None, product)


def _eliminate(matrix):
    """Gaussian elimination with partial pivoting (Golub & Van Loan, Matrix Computations, Alg. 3.4.1), column by column.

    ``jax.lax.linalg.lu`` calls LAPACK and then turns its row swaps into a permutation in a
    ``while`` loop of one iteration per row, which XLA:CPU runs as a loop of its own inside
    every step. On ROBER (3 states, rtol 1e-8) the compiled Rodas5P ForwardDiffSensitivity
    gradient took 1.40 ms with it and 0.86 ms with this elimination and the solve rule of
    :meth:`LU.solve` (benchmarks/README.md, sections 1 and 6). The pivot of each column is its
    largest entry in modulus on or below the diagonal (the first of equals), as in ``getrf``.
    """
    n = matrix.shape[-1]
    rows = jnp.arange(n)
    permutation, factors = rows, matrix
    for k in range(n - 1):
        pivot = jnp.argmax(jnp.where(rows >= k, jnp.abs(factors[:, k]), -1.0))
        swap = jnp.where(rows == k, pivot, jnp.where(rows == pivot, k, rows))
        factors, permutation = factors[swap], permutation[swap]
        below = rows > k
        multipliers = jnp.where(below, factors[:, k] / factors[k, k], 0.0)
        updated = factors - multipliers[:, None] * factors[k][None, :]
        factors = jnp.where(below[:, None] & below[None, :], updated, factors)
        factors = jnp.where(below[:, None] & (rows == k)[None, :], multipliers[:, None], factors)
    return factors, permutation
