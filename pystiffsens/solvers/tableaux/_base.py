"""Frozen coefficient tables that check themselves on construction.

Two families:

* :class:`ButcherTableau` for Runge–Kutta methods, diagonally or fully implicit, in the
  usual ``A, b, c`` form plus an embedded error weight vector and dense-output polynomials.
* :class:`RosenbrockTableau` for Rosenbrock–Wanner methods, stored in the transformed form
  that avoids matrix–vector products with the Jacobian (Hairer & Wanner, *Solving ODEs II*,
  Sect. IV.7, eq. (7.25)); the original form ``alpha, Gamma, b`` is derived from it for
  order conditions and stability functions.

Inconsistent data raises ``ValueError`` naming the failed relation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import _order

_ATOL = 1e-12


def _as_array(value, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}.")
    arr.setflags(write=False)
    return arr


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class ButcherTableau:
    """Coefficients of a Runge–Kutta method, diagonally or fully implicit.

    Only ``A``, ``b``, ``c`` and ``name`` are required; the rest have the defaults below.

    Attributes
    ----------
    A : (s, s) stage matrix: lower triangular (diagonal included) for a diagonally implicit
        method (stepper :class:`~pystiffsens.solvers.ESDIRK`), any nonsingular diagonalizable
        matrix for a fully implicit one (:class:`~pystiffsens.solvers.FIRK`).
    b : (s,) solution weights.
    c : (s,) nodes, with ``c == A.sum(1)``.
    b_error : (s,) weights of the local error estimate ``sum_i b_error[i] h k_i`` (with
        ``b_error_explicit`` below), ``b - b_hat`` for an embedded pair. Default zeros: no
        error estimate, and the method runs with fixed steps only.
    b_error_explicit : weight of an explicit term ``h f(t0, y0)`` in the error estimate
        (default 0): RADAU5's embedded formula has one (Hairer & Wanner II, Sect. IV.8,
        eq. (8.19)). ``sum(b_error) + b_error_explicit == 0``.
    dense : (s, p) coefficients of the dense-output weights
        ``b_i(theta) = sum_k dense[i, k] * theta**(k + 1)``, with ``b_i(1) = b_i``. Default:
        the collocation polynomial ``b_i(theta) = int_0^theta l_i(u) du`` (``l_i`` the Lagrange
        basis on ``c``) when the nodes are distinct and these weights integrate to ``b``
        (collocation methods: Gauss, Radau IIA; Hairer & Wanner II, Sect. IV.5); otherwise
        the linear ``b_i(theta) = theta b_i``, of order 1.
    order : classical order. Default: derived from the rooted-tree order conditions
        (:mod:`._order`).
    embedded_order : order of the embedded method (0 without one). Default: derived likewise.
    name : the method's label.
    reference : the primary source of the coefficients (default "").
    """

    A: np.ndarray
    b: np.ndarray
    c: np.ndarray
    name: str
    b_error: np.ndarray = None  # type: ignore[assignment]  # default zeros, set in __post_init__
    b_error_explicit: float = 0.0
    dense: np.ndarray = None  # type: ignore[assignment]  # default collocation or linear, set in __post_init__
    order: int = None  # type: ignore[assignment]  # default derived, set in __post_init__
    embedded_order: int = None  # type: ignore[assignment]  # default derived, set in __post_init__
    reference: str = ""

    def __post_init__(self):
        A = _as_array(self.A, 2, "A")
        s = A.shape[0]
        object.__setattr__(self, "A", A)
        if self.b_error is None:
            object.__setattr__(self, "b_error", np.zeros(s))
        for field, ndim in (("b", 1), ("c", 1), ("b_error", 1)):
            object.__setattr__(self, field, _as_array(getattr(self, field), ndim, field))
        object.__setattr__(self, "b_error_explicit", float(self.b_error_explicit))
        _require(A.shape == (s, s), f"{self.name}: A must be square, got {A.shape}.")
        _require(self.b.shape == (s,) and self.c.shape == (s,) and self.b_error.shape == (s,),
                 f"{self.name}: b, c and b_error must have {s} entries.")
        _require(np.allclose(A.sum(axis=1), self.c, atol=_ATOL), f"{self.name}: row sums of A differ from c.")
        _require(abs(self.b.sum() - 1.0) < _ATOL, f"{self.name}: sum(b) = {float(self.b.sum())!r}, expected 1.")
        error_sum = self.b_error.sum() + self.b_error_explicit
        _require(abs(error_sum) < _ATOL,
                 f"{self.name}: sum(b_error) + b_error_explicit = {float(error_sum)!r}, expected 0.")
        if self.dense is None:
            object.__setattr__(self, "dense", _default_dense(self.b, self.c))
        object.__setattr__(self, "dense", _as_array(self.dense, 2, "dense"))
        _require(self.dense.shape[0] == s, f"{self.name}: dense must have {s} rows.")
        _require(np.allclose(self.dense.sum(axis=1), self.b, atol=1e-10),
                 f"{self.name}: dense output at theta = 1 differs from b.")
        if self.order is None:
            object.__setattr__(self, "order", _order.classical_order(A, self.b))
        if self.embedded_order is None:
            derived = _order.classical_order(*self.embedded_method) if self.adaptive else 0
            object.__setattr__(self, "embedded_order", derived)

    @property
    def stages(self) -> int:
        return self.A.shape[0]

    @property
    def diagonally_implicit(self) -> bool:
        """Whether ``A`` is lower triangular (stages solved one after another)."""
        return bool(np.allclose(np.triu(self.A, 1), 0.0))

    @property
    def adaptive(self) -> bool:
        """Whether an embedded error estimate exists."""
        return bool(np.any(self.b_error != 0.0) or self.b_error_explicit != 0.0)

    @property
    def explicit_first_stage(self) -> bool:
        return self.A[0, 0] == 0.0

    @property
    def stiffly_accurate(self) -> bool:
        return bool(np.allclose(self.A[-1], self.b))

    @property
    def b_hat(self) -> np.ndarray:
        """Weights of the embedded method on the stages (its explicit term: ``-b_error_explicit``)."""
        return self.b - self.b_error

    @property
    def embedded_method(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A, b_hat)`` of the embedded method, with a leading explicit stage if it has an explicit term."""
        if self.b_error_explicit == 0.0:
            return self.A, self.b_hat
        return _order.with_explicit_stage(self.A, self.b_hat, -self.b_error_explicit)


def collocation_dense(c) -> np.ndarray:
    """``dense`` of the collocation polynomial on the distinct nodes ``c``: row ``i`` holds the
    coefficients of ``b_i(theta) = int_0^theta l_i(u) du`` in ``theta, theta**2, ..., theta**s``,
    ``l_i`` the Lagrange basis polynomial on ``c`` (Hairer & Wanner II, Sect. IV.5)."""
    c = np.asarray(c, dtype=np.float64)
    rows = []
    for i in range(c.shape[0]):
        others = np.delete(c, i)
        basis = np.polynomial.polynomial.polyfromroots(others) / np.prod(c[i] - others)
        rows.append(basis / np.arange(1, c.shape[0] + 1))  # int_0^theta u^k du = theta^(k+1)/(k+1)
    return np.array(rows)


def _default_dense(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The collocation polynomial when ``c`` is distinct and it reproduces ``b`` at theta = 1, else ``theta b``."""
    if np.unique(c).shape[0] == c.shape[0]:
        dense = collocation_dense(c)
        if np.allclose(dense.sum(axis=1), b, atol=1e-10):
            return dense
    return b[:, None].copy()


@dataclasses.dataclass(frozen=True, eq=False)
class RosenbrockTableau:
    """Coefficients of a Rosenbrock–Wanner method in the transformed form of HW IV.7 (7.25).

    One step from ``(t, y)`` with step ``h`` solves, for ``i = 1..s``,

    ``(I/(h*gamma) - J) U_i = f(t + alpha_i h, y + sum_j a[i, j] U_j) + sum_j C[i, j]/h U_j + gamma_i h f_t``

    and sets ``y1 = y + sum_i m[i] U_i``; the local error estimate is ``sum_i m_error[i] U_i``.
    Dense output (the stiff-aware interpolant of Rodas-type methods, Hairer & Wanner II
    Sect. IV.7 and Steinebach 2023): with ``K_r = sum_j H[r, j] U_j``,

    ``y(theta) = (1 - theta) y + theta (y1 + (1 - theta)(K_1 + theta (K_2 + theta (K_3 + ...))))``.

    Attributes
    ----------
    gamma : diagonal coefficient.
    a, C : (s, s) strictly lower-triangular transformed coefficients.
    m, m_error : (s,) solution weights and error weights (``m - m_hat``).
    alpha, gamma_sum : (s,) stage times ``alpha_i`` and ``gamma_i = sum_j gamma_ij``.
    H : (k, s) dense-output coefficients.
    """

    gamma: float
    a: np.ndarray
    C: np.ndarray
    m: np.ndarray
    m_error: np.ndarray
    alpha: np.ndarray
    gamma_sum: np.ndarray
    H: np.ndarray
    order: int
    embedded_order: int
    name: str
    reference: str

    def __post_init__(self):
        for field, ndim in (("a", 2), ("C", 2), ("m", 1), ("m_error", 1), ("alpha", 1), ("gamma_sum", 1), ("H", 2)):
            object.__setattr__(self, field, _as_array(getattr(self, field), ndim, field))
        s = self.m.shape[0]
        for field in ("a", "C"):
            M = getattr(self, field)
            _require(M.shape == (s, s), f"{self.name}: {field} must be ({s}, {s}), got {M.shape}.")
            _require(np.allclose(np.triu(M), 0.0), f"{self.name}: {field} must be strictly lower triangular.")
        for field in ("m_error", "alpha", "gamma_sum"):
            _require(getattr(self, field).shape == (s,), f"{self.name}: {field} must have {s} entries.")
        _require(self.H.shape[1] == s, f"{self.name}: H must have {s} columns.")
        _require(self.gamma > 0, f"{self.name}: gamma must be positive.")
        # The transformed data must map back to a consistent original method.
        _require(abs(self.b.sum() - 1.0) < 1e-10, f"{self.name}: sum(b) = {float(self.b.sum())!r}, expected 1.")
        _require(np.allclose(self.alpha_matrix.sum(axis=1), self.alpha, atol=1e-10),
                 f"{self.name}: row sums of the original alpha differ from the stage times alpha.")
        _require(np.allclose(self.Gamma.sum(axis=1), self.gamma_sum, atol=1e-10),
                 f"{self.name}: row sums of Gamma differ from gamma_sum.")

    @property
    def stages(self) -> int:
        return self.m.shape[0]

    @property
    def Gamma(self) -> np.ndarray:
        """The original lower-triangular ``(gamma_ij)`` with ``gamma`` on the diagonal."""
        s = self.stages
        return np.linalg.inv(np.eye(s) / self.gamma - self.C)

    @property
    def alpha_matrix(self) -> np.ndarray:
        """The original strictly lower-triangular ``(alpha_ij) = a Gamma``."""
        return self.a @ self.Gamma

    @property
    def b(self) -> np.ndarray:
        """Original solution weights ``b = m Gamma``."""
        return self.m @ self.Gamma

    @property
    def b_hat(self) -> np.ndarray:
        """Original embedded weights."""
        return (self.m - self.m_error) @ self.Gamma

    @property
    def beta(self) -> np.ndarray:
        """``alpha + Gamma``: the matrix in the order conditions and in ``R(z) = 1 + z b (I - z beta)^-1 1``."""
        return self.alpha_matrix + self.Gamma
