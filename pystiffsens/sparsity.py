"""Jacobians with known structural zeros, formed from fewer Jacobian-vector products.

Columns of a Jacobian that have no nonzero row in common can be differentiated together:
one Jacobian-vector product with the sum of their unit vectors gives each of their entries,
because in every row at most one of them is nonzero (Curtis, Powell & Reid, "On the
estimation of sparse Jacobian matrices", J. Inst. Math. Appl. 13 (1974) 117–119). Grouping
the columns is colouring the graph in which two columns are adjacent when they share a row
(Coleman & Moré, "Estimation of sparse Jacobian matrices and graph coloring problems", SIAM
J. Numer. Anal. 20 (1983) 187–209); :class:`Sparsity` colours greedily, largest column
first, as those papers' LFO ordering. A model of ``n`` states whose Jacobian needs ``c``
colours is then differentiated with ``c`` forward-mode products instead of ``n``. The
Jacobian is formed as a dense matrix; the iteration matrices of large sparse patterns are
factorised by a sparse LU planned from the same pattern (:mod:`pystiffsens.solvers.sparse_lu`).

The pattern must hold every entry that can be nonzero anywhere (a structural pattern): an
entry outside it is read as zero. SciML passes the same information as ``ODEFunction``'s
``jac_prototype``, scipy's ``solve_ivp`` as ``jac_sparsity``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


class Sparsity:
    """The structural nonzeros of a square Jacobian ``df/dy`` (``mask[i, j]``: ``f_i`` depends on ``y_j``).

    ``mask`` is a square boolean array (anything ``numpy.asarray`` turns into one, or a scipy
    sparse matrix, whose stored entries count). Equal masks give equal (and equally hashed)
    objects, so programs built for one serve the other.
    """

    def __init__(self, mask):
        if hasattr(mask, "toarray"):  # scipy.sparse
            mask = mask.toarray() != 0
        mask = np.asarray(mask)
        if mask.ndim != 2 or mask.shape[0] != mask.shape[1] or mask.shape[0] == 0:
            raise ValueError(
                f"a Jacobian sparsity pattern must be a non-empty square matrix; got shape {mask.shape}."
            )
        if mask.dtype != bool:
            if not np.all(np.isin(mask, (0, 1))):
                raise ValueError("a Jacobian sparsity pattern must be boolean (or 0/1): True where df_i/dy_j may be nonzero.")
            mask = mask.astype(bool)
        self.mask = mask.copy()
        self.mask.setflags(write=False)
        self._key = (mask.shape[0], np.packbits(mask).tobytes())
        self._tiled: dict[int, Sparsity] = {}

    @property
    def size(self) -> int:
        return self.mask.shape[0]

    def __eq__(self, other):
        return isinstance(other, Sparsity) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self) -> str:
        return f"Sparsity(size={self.size}, nonzeros={int(self.mask.sum())}, colors={self.n_colors})"

    @functools.cached_property
    def colors(self) -> np.ndarray:
        """The colour of each column: columns of one colour share no nonzero row (greedy, largest column first)."""
        n = self.size
        rows_of = [np.flatnonzero(self.mask[:, j]) for j in range(n)]
        order = sorted(range(n), key=lambda j: -len(rows_of[j]))  # stable: ties keep column order
        used_in_row = [set() for _ in range(n)]
        colors = np.empty(n, dtype=np.int64)
        for j in order:
            taken = set().union(*(used_in_row[r] for r in rows_of[j]))
            color = next(c for c in range(n) if c not in taken)
            colors[j] = color
            for r in rows_of[j]:
                used_in_row[r].add(color)
        colors.setflags(write=False)
        return colors

    @property
    def n_colors(self) -> int:
        """Forward-mode products per Jacobian (``size`` for a dense pattern)."""
        return int(self.colors.max()) + 1

    @functools.cached_property
    def T(self) -> Sparsity:
        """The pattern of the transposed Jacobian (an adjoint's ``-J^T``)."""
        return Sparsity(self.mask.T)

    @functools.cached_property
    def with_identity(self) -> Sparsity:
        """The pattern of ``c I + d J`` (an iteration matrix, a stage residual's Jacobian)."""
        return Sparsity(self.mask | np.eye(self.size, dtype=bool))

    def tiled(self, blocks: int) -> Sparsity:
        """The pattern of a ``blocks x blocks`` array of such blocks (coupled stages, e.g. a Radau IIA system)."""
        if blocks not in self._tiled:  # kept, so that its colouring is computed once
            self._tiled[blocks] = Sparsity(np.kron(np.ones((blocks, blocks), dtype=bool), self.mask))
        return self._tiled[blocks]


def jacobian(fn, x, sparsity: Sparsity | None = None):
    """``d fn / d x`` at ``x`` as a dense matrix, for ``fn`` from vectors to vectors of the same length.

    With a ``sparsity`` pattern it takes one forward-mode product per colour and places each
    product's entries in their columns; without one, or when the pattern needs as many
    colours as columns, it is ``jax.jacfwd``. Differentiable like ``jax.jacfwd``.
    """
    n = x.shape[0]
    if sparsity is not None and sparsity.size != n:
        raise ValueError(f"the Jacobian sparsity pattern is {sparsity.size} x {sparsity.size}, but the state has {n} entries.")
    if sparsity is None or sparsity.n_colors >= n:
        return jax.jacfwd(fn)(x)
    colors = sparsity.colors
    seeds = jnp.asarray(np.arange(sparsity.n_colors)[:, None] == colors[None, :], dtype=x.dtype)
    compressed = jax.vmap(lambda v: jax.jvp(fn, (x,), (v,))[1], out_axes=1)(seeds)  # (n, colors)
    return jnp.where(sparsity.mask, compressed[:, colors], 0.0)
