"""Exact polynomial arithmetic on :class:`fractions.Fraction` coefficients.

Polynomials are tuples of coefficients in ascending powers. A float converts to a
``Fraction`` exactly, so every polynomial built here is the exact one of the float data it
came from; the only approximation left is in that data, which :func:`trim` handles.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

Poly = tuple[Fraction, ...]

TRIM_RTOL = 1e-10
"""Relative size below which a leading coefficient counts as zero in :func:`trim`.

Tableau coefficients are decimals rounded to about 16 digits, so a coefficient that is zero
for the exact method comes out of the rounded data as residue: at most 4.7e-15 of the
largest scaled coefficient for the built-in methods (Rodas5P's ``z^8`` in ``P``), while the
leading coefficients they keep are at least 2.2e-3 of it (Rodas5P's ``P'Q - PQ'``).
1e-10 separates the two with wide margin on both sides."""


def exact_matrix(values) -> list[list[Fraction]]:
    """The float matrix ``values`` as exact fractions."""
    return [[Fraction(float(x)) for x in row] for row in np.asarray(values, dtype=np.float64)]


def _matmul(a, b):
    n = len(b)
    return [[sum(a[i][k] * b[k][j] for k in range(n)) for j in range(len(b[0]))] for i in range(len(a))]


def det_one_minus_z(matrix: list[list[Fraction]]) -> Poly:
    """Coefficients of ``det(I - z M)`` for a square ``M``, exactly.

    With the characteristic polynomial ``det(lam I - M) = sum_k c_k lam^(s-k)`` one has
    ``det(I - z M) = sum_k c_k z^k``; the ``c_k`` come from the Faddeev–LeVerrier recursion
    ``N_k = M N_(k-1) + c_(k-1) I``, ``c_k = -tr(M N_k) / k`` (Gantmacher, *The Theory of
    Matrices*, Vol. 1, Ch. IV), which needs only ring operations and division by k.
    """
    s = len(matrix)
    identity = [[Fraction(int(i == j)) for j in range(s)] for i in range(s)]
    coeffs = [Fraction(1)]
    n_k = [[Fraction(0)] * s for _ in range(s)]
    for k in range(1, s + 1):
        n_k = [[x + coeffs[-1] * e for x, e in zip(row, id_row)] for row, id_row in zip(_matmul(matrix, n_k), identity)]
        m_n = _matmul(matrix, n_k)
        coeffs.append(-sum(m_n[i][i] for i in range(s)) / k)
    return tuple(coeffs)


def add(p: Poly, q: Poly) -> Poly:
    n = max(len(p), len(q))
    zero = Fraction(0)
    return tuple((p[i] if i < len(p) else zero) + (q[i] if i < len(q) else zero) for i in range(n))


def scale(p: Poly, c) -> Poly:
    return tuple(c * x for x in p)


def mul(p: Poly, q: Poly) -> Poly:
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, x in enumerate(p):
        for j, y in enumerate(q):
            out[i + j] += x * y
    return tuple(out)


def derivative(p: Poly) -> Poly:
    return tuple(k * p[k] for k in range(1, len(p))) or (Fraction(0),)


def wronskian(p: Poly, q: Poly) -> Poly:
    """``p' q - p q'``: the numerator of ``(p/q)'`` over ``q**2``."""
    return add(mul(derivative(p), q), scale(mul(p, derivative(q)), -1))


def degree(p: Poly) -> int:
    """Degree of ``p`` (``-1`` for the zero polynomial)."""
    nonzero = [k for k, x in enumerate(p) if x != 0]
    return nonzero[-1] if nonzero else -1


def trim(p: Poly, z_scale: float, rtol: float = TRIM_RTOL) -> Poly:
    """Drop leading coefficients that are rounding residue of the tableau data.

    Coefficients are compared in the dimensionless variable ``w = z_scale * z`` (``z_scale``
    the size of the stage matrix, so the powers of ``w`` are of one size): the coefficient of
    ``z^k`` is dropped, from the top down, while ``|p_k| / z_scale^k <= rtol * max_j
    |p_j| / z_scale^j``.
    """
    scaled = [abs(float(x)) / z_scale**k for k, x in enumerate(p)]
    top = max(scaled)
    if top == 0.0:
        return (Fraction(0),)
    n = len(p)
    while n > 1 and scaled[n - 1] <= rtol * top:
        n -= 1
    return tuple(p[:n])


def as_float(p: Poly) -> np.ndarray:
    return np.array([float(x) for x in p], dtype=np.float64)
