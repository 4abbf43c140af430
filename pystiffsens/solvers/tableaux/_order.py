"""The classical order of a Runge–Kutta method from its rooted-tree order conditions.

A method ``(A, b)`` has order ``p`` when ``sum_i b_i Phi_i(t) = 1/gamma(t)`` for every rooted
tree ``t`` with at most ``p`` vertices (Butcher; Hairer, Nørsett & Wanner, *Solving ODEs I*,
2nd ed., Sect. II.2, Theorem 2.13). ``Phi_i(t)`` is the elementary weight: the single vertex
has ``Phi = 1`` and a tree whose root has the subtrees ``t_1..t_m`` has
``Phi(t) = prod_k (A Phi(t_k))`` (componentwise). Dense-output weights ``b_i(theta)`` satisfy
the same conditions with right-hand side ``theta**|t| / gamma(t)``.

A tree is the sorted tuple of the trees hanging from its root; the single vertex is ``()``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

#: A condition holds when its residual is below this (the coefficients are float64 roundings).
ORDER_TOL = 1e-10

Tree = tuple


@functools.cache
def _forests(total: int) -> frozenset:
    """All multisets of trees (as sorted tuples) with ``total`` vertices in all."""
    if total == 0:
        return frozenset({()})
    return frozenset(
        tuple(sorted(forest + (tree,)))
        for size in range(1, total + 1)
        for tree in trees(size)
        for forest in _forests(total - size)
    )


def trees(order: int) -> frozenset:
    """The rooted trees with exactly ``order`` vertices (1, 1, 2, 4, 9, 20, 48, ... of them)."""
    return _forests(order - 1)


def vertices(tree: Tree) -> int:
    """``|t|``: the number of vertices."""
    return 1 + sum(vertices(child) for child in tree)


def density(tree: Tree) -> int:
    """``gamma(t)``: ``|t|`` times the densities of the subtrees of the root."""
    return vertices(tree) * math.prod(density(child) for child in tree)


def elementary_weights(A: np.ndarray, tree: Tree) -> np.ndarray:
    """``Phi(t)`` of the stage matrix ``A``: one entry per stage."""
    return math.prod((A @ elementary_weights(A, child) for child in tree), start=np.ones(A.shape[0]))


def residuals(phi: Callable[[Tree], np.ndarray], weights: np.ndarray, order: int, theta: float = 1.0) -> dict:
    """``weights . phi(t) - theta**|t| / gamma(t)`` for every tree ``t`` with exactly ``order`` vertices.

    ``phi`` maps a tree to its elementary weights (:func:`elementary_weights` for a Butcher
    tableau; Rosenbrock methods use their own, Hairer & Wanner II, Sect. IV.7, Table 7.1).
    """
    return {tree: float(weights @ phi(tree) - theta**order / density(tree)) for tree in trees(order)}


def classical_order(A: np.ndarray, b: np.ndarray, max_order: int | None = None, tol: float = ORDER_TOL) -> int:
    """The largest ``p`` such that ``(A, b)`` satisfies every order condition up to ``p`` vertices.

    The search stops at ``max_order`` (default ``2 s``: no ``s``-stage method exceeds the order
    of the ``s``-stage Gauss method; J. C. Butcher, "Implicit Runge-Kutta processes", Math.
    Comp. 18 (1964) 50-64).
    """
    A, b = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
    limit = 2 * A.shape[0] if max_order is None else max_order
    order = 0
    while order < limit:
        worst = max(abs(r) for r in residuals(lambda t: elementary_weights(A, t), b, order + 1).values())
        if worst >= tol:
            break
        order += 1
    return order


def with_explicit_stage(A: np.ndarray, b: np.ndarray, explicit_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` of the method that adds ``explicit_weight * h f(t0, y0)`` to ``y0 + sum_i b_i h k_i``.

    The term is a leading stage with ``c = 0`` and a zero row of ``A``: the embedded formula
    of RADAU5 (Hairer & Wanner II, Sect. IV.8, before eq. (8.19)) is such a method.
    """
    s = A.shape[0]
    augmented = np.zeros((s + 1, s + 1))
    augmented[1:, 1:] = A
    return augmented, np.concatenate([[explicit_weight], b])
