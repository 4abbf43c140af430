"""Frozen coefficient tables that check themselves on construction.

Two families:

* :class:`ButcherTableau` for (E)SDIRK methods, in the usual ``A, b, c`` form plus an
  embedded error weight vector and dense-output polynomials.
* :class:`RosenbrockTableau` for Rosenbrock–Wanner methods, stored in the transformed form
  that avoids matrix–vector products with the Jacobian (Hairer & Wanner, *Solving ODEs II*,
  Sect. IV.7, eq. (7.25)); the original form ``alpha, Gamma, b`` is derived from it for
  order conditions and stability functions.

Inconsistent data raises ``ValueError`` naming the failed relation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

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


@dataclasses.dataclass(frozen=True, eq=False)
class ButcherTableau:
    """Coefficients of a diagonally implicit Runge–Kutta method.

    Attributes
    ----------
    A : (s, s) lower-triangular stage matrix (diagonal included).
    b : (s,) solution weights.
    c : (s,) nodes, with ``c == A.sum(1)``.
    b_error : (s,) weights of the local error estimate, ``b - b_hat`` (zeros when the method
        has no embedded pair: such methods run with fixed steps only).
    dense : (s, p) coefficients of the dense-output weights
        ``b_i(theta) = sum_k dense[i, k] * theta**(k + 1)``, with ``b_i(1) = b_i``.
    order, embedded_order : classical orders (``embedded_order`` is 0 without a pair).
    name, reference : label and the primary source of the coefficients.
    """

    A: np.ndarray
    b: np.ndarray
    c: np.ndarray
    b_error: np.ndarray
    dense: np.ndarray
    order: int
    embedded_order: int
    name: str
    reference: str

    def __post_init__(self):
        A = _as_array(self.A, 2, "A")
        s = A.shape[0]
        object.__setattr__(self, "A", A)
        for field, ndim in (("b", 1), ("c", 1), ("b_error", 1), ("dense", 2)):
            object.__setattr__(self, field, _as_array(getattr(self, field), ndim, field))
        _require(A.shape == (s, s), f"{self.name}: A must be square, got {A.shape}.")
        _require(np.allclose(np.triu(A, 1), 0.0), f"{self.name}: A must be lower triangular (diagonally implicit).")
        _require(self.b.shape == (s,) and self.c.shape == (s,) and self.b_error.shape == (s,),
                 f"{self.name}: b, c and b_error must have {s} entries.")
        _require(np.allclose(A.sum(axis=1), self.c, atol=_ATOL), f"{self.name}: row sums of A differ from c.")
        _require(abs(self.b.sum() - 1.0) < _ATOL, f"{self.name}: sum(b) = {self.b.sum()!r}, expected 1.")
        _require(abs(self.b_error.sum()) < _ATOL, f"{self.name}: sum(b_error) = {self.b_error.sum()!r}, expected 0.")
        _require(self.dense.shape[0] == s, f"{self.name}: dense must have {s} rows.")
        _require(np.allclose(self.dense.sum(axis=1), self.b, atol=1e-10),
                 f"{self.name}: dense output at theta = 1 differs from b.")

    @property
    def stages(self) -> int:
        return self.A.shape[0]

    @property
    def adaptive(self) -> bool:
        """Whether an embedded error estimate exists."""
        return bool(np.any(self.b_error != 0.0))

    @property
    def explicit_first_stage(self) -> bool:
        return self.A[0, 0] == 0.0

    @property
    def stiffly_accurate(self) -> bool:
        return bool(np.allclose(self.A[-1], self.b))

    @property
    def b_hat(self) -> np.ndarray:
        return self.b - self.b_error


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
        _require(abs(self.b.sum() - 1.0) < 1e-10, f"{self.name}: sum(b) = {self.b.sum()!r}, expected 1.")
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
