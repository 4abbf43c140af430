"""Sparse LU of iteration matrices with a known pattern: the pivot order fixed before the solve, the elimination run level by level.

A stiff model with a sparse Jacobian (:mod:`pystiffsens.sparsity`) factorises one iteration
matrix ``I/delta - coef J`` per step. Its pattern is the same on every step, so the work can be
planned once, on the host, before anything is traced (as KLU keeps its symbolic analysis and
pivot order for every refactorisation: Davis & Palamadai Natarajan, "Algorithm 907: KLU",
ACM TOMS 37 (2010) 36):

* **Ordering.** A symmetric permutation ``P A P^T`` that keeps the fill small: SuperLU's
  multiple minimum degree on the pattern of ``A^T + A`` (Liu, "Modification of the
  minimum-degree algorithm by multiple elimination", ACM TOMS 11 (1985) 141-153), through
  ``scipy.sparse.linalg.splu(permc_spec="MMD_AT_PLUS_A")``. Pivots are the diagonal entries in
  that order (static pivoting: Li & Demmel, "Making sparse Gaussian elimination scalable by
  static pivoting", SC 1998).
* **Symbolic factorisation.** The pattern of ``L + U`` (the fill) by eliminating the pattern.
* **Levels.** Pivot ``k`` needs every earlier pivot ``m`` with ``L[k, m]`` or ``U[m, k]``
  structurally nonzero (those update its row and column). Pivots of one level need none of
  each other, so each level is two scatters over the nonzeros, its multipliers and its
  rank-one updates, each with its gathers (level scheduling: Anderson & Saad, "Solving sparse triangular linear
  systems on parallel computers", Int. J. High Speed Comput. 1 (1989) 73-95).

The factors are placed in a dense matrix, and the solves are the dense triangular solves of
:mod:`.linear`. Without row exchanges a pivot can be small: the
**element growth** ``max |L \\ U| / max |A|`` is checked on every factorisation, and above
:data:`PIVOT_GROWTH_LIMIT` the factors are NaN, so the step is rejected and retried with a
smaller one, where ``I/delta`` dominates (a smaller step always makes the diagonal pivots safe).

Measured on PEtab models of 25 to 500 states (``benchmarks/bench_petab.py``; benchmarks/README.md,
section 8, "A sparse LU planned from the pattern"): likelihoods 1.2-2.2x faster than with the
dense LU, discrete-adjoint gradients up to 1.3x (their transposed solves stay dense). The
discrete adjoint's first calls are within 10 % up to 36 states and 20 % longer on 105-124 (XLA
compiles each level's operations: Lang's gradient program 35.0 s against 27.1); forward mode's
first call was 22 % longer on Isensee (25).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ..sparsity import Sparsity

MIN_SIZE = 16
"""Smallest system factorised by :class:`Elimination` (smaller ones: the dense LU of :mod:`.linear`).

From 25 states up every PEtab likelihood measured ran faster with it (benchmarks/README.md, section 8).
With the threshold lowered to 8, Fujita and Brannmark (9 states) ran slower in every call
(likelihood 1.4-2.3x, first calls up to 1.5x) and Zheng (15) split (likelihood 1.2x faster,
discrete adjoint 1.2x slower): a dense LU of a small matrix takes a few microseconds, and each level
of the elimination is an operation of its own. Between 16 and 24 states it was not measured."""

MAX_FILL = 0.5
"""Largest fill (nonzeros of ``L + U``) as a fraction of the matrix's entries for which :class:`Elimination` is used.

Not measured: above it the elimination does much of a dense LU's arithmetic in many more operations. The PEtab
models measured fill 3-19 % (Chen 3 %, Smith 11 %, Alkan 19 %)."""

PIVOT_GROWTH_LIMIT = 1e4
"""Largest element growth ``max |L \\ U| / max |A|`` accepted; above it the factors are NaN (the step is retried smaller).

Elimination without row exchanges is stable where ``A`` is diagonally dominant, as an iteration
matrix ``I/delta - coef J`` is for small enough steps; partial pivoting keeps the growth of most
matrices below 10. Wilkinson's backward-error bound makes the factors with a growth ``g`` those of a
matrix within about ``n * g * eps`` of ``A`` relative to its largest entry: ``4.4e-10`` for 200
unknowns at the limit.
"""


def fill_reducing_order(pattern: np.ndarray) -> np.ndarray:
    """A symmetric ordering of ``pattern`` (boolean, with its diagonal) that keeps the fill of its LU small: ``order[i]``
    is the row and column eliminated ``i``-th (SuperLU's minimum degree on ``A^T + A``, diagonal pivots)."""
    n = pattern.shape[0]
    # Any values with this pattern and a dominant diagonal: the ordering depends on the pattern alone.
    values = scipy.sparse.csc_matrix(pattern.astype(float) + n * np.eye(n))
    lu = scipy.sparse.linalg.splu(values, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
    return np.argsort(lu.perm_c)  # perm_c[j] is the position column j moves to


def _below_and_right(filled: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows below pivot ``k`` with a nonzero in its column, and the columns right of it with a nonzero in its row."""
    return k + 1 + np.flatnonzero(filled[k + 1 :, k]), k + 1 + np.flatnonzero(filled[k, k + 1 :])


class Elimination:
    """The planned LU factorisation of matrices with ``sparsity``'s pattern (plus the diagonal), in a fixed pivot order.

    ``order``: the symmetric permutation (:func:`fill_reducing_order`); ``inverse_order`` puts a
    permuted vector back. ``rows``, ``cols``: the nonzeros of ``L + U`` of ``P A P^T``
    (``L`` unit lower, its diagonal not stored). ``levels``: per level, the positions (into
    the nonzeros) of the multipliers, of their pivots, and the updates ``target -= left * right``.
    """

    def __init__(self, sparsity: Sparsity):
        n = sparsity.size
        pattern = sparsity.mask | np.eye(n, dtype=bool)
        self.order = fill_reducing_order(pattern)
        self.inverse_order = np.argsort(self.order)
        filled = pattern[np.ix_(self.order, self.order)]
        for k in range(n):
            filled[np.ix_(*_below_and_right(filled, k))] = True
        self.rows, self.cols = np.nonzero(filled)
        position = np.full((n, n), -1)
        position[self.rows, self.cols] = np.arange(self.rows.size)
        level = np.zeros(n, dtype=int)
        for k in range(n):
            needed = np.flatnonzero(filled[k, :k] | filled[:k, k])
            level[k] = level[needed].max() + 1 if needed.size else 0
        self.levels = [self._level(filled, position, np.flatnonzero(level == number))
                       for number in range(level.max() + 1)]

    @staticmethod
    def _level(filled, position, pivots):
        """The index arrays of one level's multipliers and updates (:attr:`levels`), for the pivots ``pivots``."""
        multipliers, their_pivots, targets, left, right = [], [], [], [], []
        for k in pivots:
            below, across = _below_and_right(filled, k)
            multipliers.append(position[below, k])
            their_pivots.append(np.full(below.size, position[k, k]))
            targets.append(position[np.ix_(below, across)].ravel())
            left.append(np.repeat(position[below, k], across.size))
            right.append(np.tile(position[k, across], below.size))
        return tuple(np.concatenate(part).astype(np.int32) for part in (multipliers, their_pivots, targets, left, right))

    @property
    def fill(self) -> int:
        """Nonzeros of ``L + U``."""
        return int(self.rows.size)

    def factor(self, matrix):
        """``L \\ U`` of ``P matrix P^T`` packed in one dense matrix (rows and columns in :attr:`order`); NaN where
        the element growth exceeds :data:`PIVOT_GROWTH_LIMIT`. Real or complex; ``jax.vmap`` batches it."""
        values = matrix[self.order[self.rows], self.order[self.cols]]
        largest = jnp.max(jnp.abs(values))
        for multipliers, pivots, targets, left, right in self.levels:
            if multipliers.size:
                values = values.at[multipliers].set(values[multipliers] / values[pivots])
            if targets.size:
                values = values.at[targets].add(-values[left] * values[right])
        growth = jnp.max(jnp.abs(values)) / largest
        values = jnp.where(growth <= PIVOT_GROWTH_LIMIT, values, jnp.nan)
        return jnp.zeros(matrix.shape, values.dtype).at[self.rows, self.cols].set(values)


@functools.cache
def elimination(sparsity: Sparsity) -> Elimination | None:
    """The :class:`Elimination` for iteration matrices of ``sparsity``'s pattern, or None where the dense LU is used:
    below :data:`MIN_SIZE` unknowns, or with a fill above :data:`MAX_FILL` of the entries."""
    if sparsity.size < MIN_SIZE:
        return None
    planned = Elimination(sparsity)
    return planned if planned.fill <= MAX_FILL * sparsity.size**2 else None
