"""LU factorisation of an iteration matrix, factored once and reused by every solve with it.

``jax.scipy.linalg.lu_solve`` turns the pivot vector into a permutation on every call (a
small loop of its own); a Rosenbrock step solves with one matrix once per stage, so
:func:`lu_factor` keeps the permutation that ``jax.lax.linalg.lu`` returns and
:meth:`LU.solve` is one gather and two triangular solves.

For systems of at most :data:`SUBSTITUTION_MAX_SIZE` unknowns the triangular solves are
written out as forward and back substitution, element by element, which XLA fuses into a
few kernels. XLA's CPU ``triangular-solve`` costs far more than its arithmetic on such
small matrices, in a vmapped batch above all: a batch of 32 ROBER gradients (Rodas5P,
rtol 1e-8) ran in 50 ms with it and 22 ms with substitution (benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
from jax import lax

SUBSTITUTION_MAX_SIZE = 8
"""Largest system solved by written-out substitution instead of ``lax.linalg.triangular_solve``."""


class LU(NamedTuple):
    """``P A = L U`` with ``L`` (unit lower) and ``U`` packed in ``factors``; ``permutation`` is ``P`` as indices."""

    factors: Any
    permutation: Any

    def solve(self, b):
        """``A^{-1} b`` for a vector ``b``, or for each column of a matrix ``b``."""
        vector = b.ndim == 1
        rhs = b[self.permutation][:, None] if vector else b[self.permutation]
        if self.factors.shape[-1] <= SUBSTITUTION_MAX_SIZE:
            x = _substitute(self.factors, rhs)
        else:
            y = lax.linalg.triangular_solve(self.factors, rhs, left_side=True, lower=True, unit_diagonal=True)
            x = lax.linalg.triangular_solve(self.factors, y, left_side=True, lower=False)
        return x[:, 0] if vector else x


def _substitute(factors, rhs):
    """``U^{-1} L^{-1} rhs`` by forward (unit ``L``) then back substitution, one row at a time."""
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
        x[i] = row / factors[i, i]
    return jnp.stack(x)


def lu_factor(matrix) -> LU:
    """The LU factorisation of a square ``matrix`` (partial pivoting, LAPACK ``getrf`` on CPU).

    Real or complex: :class:`~pystiffsens.solvers.FIRK` factorises one complex matrix per
    complex-conjugate pair of eigenvalues, and both solve paths work unchanged in complex arithmetic.
    """
    factors, _, permutation = lax.linalg.lu(matrix)
    return LU(factors, permutation)
