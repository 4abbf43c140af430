"""The phi-functions of exponential integrators, from one exponential of an augmented matrix.

``phi_0(z) = e^z`` and ``phi_k(z) = sum_j z^j / (j + k)!`` (so ``phi_k(0) = 1/k!`` and
``phi_(k+1)(z) = (phi_k(z) - 1/k!) / z``). For a square ``A`` (m x m) the block matrix

    W = [[A, I, 0, ..., 0],
         [0, 0, I, ..., 0],
         ...
         [0, 0, 0, ..., I],
         [0, 0, 0, ..., 0]]        ((K + 1) m square)

has ``exp(W)`` with first block row ``[phi_0(A), phi_1(A), ..., phi_K(A)]`` (Sidje, "Expokit",
ACM TOMS 24 (1998) 130, Theorem 1; Al-Mohy & Higham, SIAM J. Sci. Comput. 33 (2011) 488,
Sect. 2). Scaling the identity blocks by ``2`` with ``A`` shows that squaring ``exp(W)`` gives
the first block row ``[phi_0(2A), 2 phi_1(2A), ..., 2^K phi_K(2A)]``, so one exponential at
``A / 2^J`` yields every ``phi_k(A / 2^j)``, ``j <= J``, by squaring alone
(:func:`phi_functions`). No division by ``A`` occurs: the functions are accurate for singular
and for stiff ``A`` alike, and differentiable in forward and reverse mode.

The exponential is Higham's scaling and squaring (SIAM J. Matrix Anal. Appl. 26 (2005) 1179):
the number of squarings ``s`` is chosen here so that ``||W / 2^s||_1 <= THETA_13``, the Padé
approximant (``jax.scipy.linalg.expm``, which then squares nothing itself) is evaluated at
``W / 2^s``, and the ``s`` squarings follow. ``jax.scipy.linalg.expm`` (JAX 0.10) takes
``floor`` where Higham's algorithm takes ``ceil`` and leaves norms up to ``2 THETA_13`` to its
degree-13 approximant, whose error is then about ``1e-8`` relative, not ``1e-16``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.scipy.linalg
from jax import lax

THETA_13 = 5.371920351148152
"""Largest 1-norm for which the [13/13] Padé approximant of ``exp`` is accurate to double
precision (Higham 2005, Sect. 2; the value ``jax.scipy.linalg.expm`` uses)."""

MAX_SQUARINGS = 50
"""Squarings available: norms up to ``THETA_13 * 2^50`` (about 6e15); a larger one gives NaN (the step
then fails as non-finite). They run in a ``lax.scan`` of this length (reverse-mode differentiable);
under ``vmap`` each ``lax.cond`` in it computes both branches, so a batch pays all 50 products."""


def expm(matrix):
    """``exp(matrix)`` by scaling and squaring with the number of squarings of Higham (2005)."""
    norm = jnp.max(jnp.sum(jnp.abs(matrix), axis=0))
    squarings = jnp.maximum(0.0, jnp.ceil(jnp.log2(norm / THETA_13)))
    scaled = jax.scipy.linalg.expm(matrix / 2.0**squarings, max_squarings=0)

    def square(carry, i):
        return lax.cond(i < squarings, lambda x: x @ x, lambda x: x, carry), None

    result, _ = lax.scan(square, scaled, jnp.arange(MAX_SQUARINGS, dtype=squarings.dtype))
    return jnp.where(squarings <= MAX_SQUARINGS, result, jnp.nan)


def phi_functions(a, order: int, fractions) -> dict:
    """``{c: stack of phi_0(c a), ..., phi_order(c a)}`` for each ``c`` in ``fractions``.

    Parameters
    ----------
    a : square matrix (m x m), e.g. ``h L``.
    order : the largest ``k`` needed (``>= 0``).
    fractions : the scalings ``c``, each ``1 / 2^j`` for an integer ``j >= 0``.

    Returns
    -------
    A dict from each ``c`` to an array of shape ``(order + 1, m, m)``; one exponential of a
    ``(order + 1) m`` square matrix at the smallest ``c``, the others by squaring.
    """
    if not (isinstance(order, int) and order >= 0):
        raise ValueError(f"order={order!r} must be a non-negative integer (the largest phi_k needed).")
    halvings = {c: check_fraction(c) for c in fractions}
    if not halvings:
        raise ValueError("fractions is empty; give at least one scaling c = 1/2^j of the matrix.")
    m = a.shape[-1]
    blocks = order + 1
    deepest = max(halvings.values())
    w = jnp.zeros((blocks * m, blocks * m), dtype=a.dtype)
    w = w.at[:m, :m].set(a / 2.0**deepest)
    for k in range(order):
        w = w.at[k * m : (k + 1) * m, (k + 1) * m : (k + 2) * m].set(jnp.eye(m, dtype=a.dtype))
    exponential = expm(w)
    out = {}
    for level in range(deepest, -1, -1):
        if level < deepest:
            exponential = exponential @ exponential
        row = exponential[:m].reshape(m, blocks, m).transpose(1, 0, 2)
        # After (deepest - level) squarings the k-th block is 2^((deepest - level) k) phi_k(a / 2^level).
        undo = jnp.asarray([2.0 ** (-(deepest - level) * k) for k in range(blocks)], dtype=a.dtype)
        for c, j in halvings.items():
            if j == level:
                out[c] = row * undo[:, None, None]
    return out


def check_fraction(c) -> int:
    """``j`` with ``c = 1 / 2^j``; ``ValueError`` for any other scaling."""
    c = float(c)
    j = round(-math.log2(c)) if c > 0 else -1
    if j < 0 or c != 2.0**-j:
        raise ValueError(f"fraction {c!r} is not 1/2^j for an integer j >= 0 (valid: 1, 0.5, 0.25, ...).")
    return j
