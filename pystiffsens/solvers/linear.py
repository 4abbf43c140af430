"""LU factorisation of an iteration matrix, factored once and reused by every solve with it.

``jax.scipy.linalg.lu_solve`` turns the pivot vector into a permutation on every call (a
small loop of its own); a Rosenbrock step solves with one matrix once per stage, so
:func:`lu_factor` keeps the permutation that ``jax.lax.linalg.lu`` returns and
:meth:`LU.solve` is one gather and two triangular solves.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from jax import lax


class LU(NamedTuple):
    """``P A = L U`` with ``L`` (unit lower) and ``U`` packed in ``factors``; ``permutation`` is ``P`` as indices."""

    factors: Any
    permutation: Any

    def solve(self, b):
        """``A^{-1} b`` for a vector ``b``, or for each column of a matrix ``b``."""
        vector = b.ndim == 1
        rhs = b[self.permutation][:, None] if vector else b[self.permutation]
        y = lax.linalg.triangular_solve(self.factors, rhs, left_side=True, lower=True, unit_diagonal=True)
        x = lax.linalg.triangular_solve(self.factors, y, left_side=True, lower=False)
        return x[:, 0] if vector else x


def lu_factor(matrix) -> LU:
    """The LU factorisation of a square ``matrix`` (partial pivoting, LAPACK ``getrf`` on CPU)."""
    factors, _, permutation = lax.linalg.lu(matrix)
    return LU(factors, permutation)
