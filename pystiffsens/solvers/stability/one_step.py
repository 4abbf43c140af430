"""The stability function of a one-step method as an exact rational function.

One step of a Runge–Kutta method with stage matrix ``A`` and weights ``b`` on
``y' = lam*y`` multiplies ``y`` by (Hairer & Wanner, *Solving ODEs II*, 2nd ed., 1996,
Sect. IV.3, Prop. 3.2)

    R(z) = 1 + z b^T (I - z A)^-1 1 = det(I - z A + z 1 b^T) / det(I - z A),   z = h*lam.

A Rosenbrock method in the original form ``alpha, Gamma, b`` has the same function with
``A`` replaced by ``beta = alpha + Gamma`` (HW II Sect. IV.7), so both families are handled
by one class. The second equality is the matrix determinant lemma; it gives the numerator
``P`` and denominator ``Q`` as polynomials, computed exactly from the float coefficients
(:mod:`._polynomial`) and trimmed of the rounding residue of the tableau data.

Differentiating, ``R'(z) = b^T (I - z A)^-2 1 = (P'Q - PQ') / Q^2``. The
parameter sensitivity of a stiff mode is carried by ``R'`` (Fronk & Petzold, "The
Vanishing Gradient Problem for Stiff Neural Differential Equations", arXiv:2508.01519,
2025), and ``|R'(z)| ~ C |z|^e`` as ``|z| -> inf`` with

    e = deg(P'Q - PQ') - 2 deg Q,

on every ray: a polynomial's leading coefficient is a constant, so it does not depend on
the direction in which ``|z|`` grows. The leading terms of ``P'Q`` and ``PQ'`` cancel
exactly when ``deg P = deg Q``, so ``e <= -2`` whenever ``R`` is bounded at infinity
(``deg P <= deg Q``, as A-stability requires).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..tableaux import ButcherTableau, RosenbrockTableau
from . import _polynomial as poly


@dataclasses.dataclass(frozen=True, eq=False)
class OneStepStability:
    """Stability function ``R(z) = 1 + z b^T (I - z M)^-1 1`` of a one-step method.

    Build it with :meth:`from_tableau`. ``M`` is the Butcher matrix ``A`` or the
    Rosenbrock ``beta = alpha + Gamma``.

    Attributes
    ----------
    name : the method's name.
    matrix, b : ``M`` and the weights.
    family : ``"Runge-Kutta"`` or ``"Rosenbrock"``.
    numerator, denominator : coefficients of ``P`` and ``Q`` in ascending powers of ``z``
        (trimmed, so the last one is nonzero).
    derivative_numerator : coefficients of ``P'Q - PQ'``, likewise trimmed.
    """

    name: str
    matrix: np.ndarray
    b: np.ndarray
    family: str
    reference: str
    _p: poly.Poly = dataclasses.field(init=False, repr=False)
    _q: poly.Poly = dataclasses.field(init=False, repr=False)
    _n: poly.Poly = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        M = np.asarray(self.matrix, dtype=np.float64)
        b = np.asarray(self.b, dtype=np.float64)
        if M.ndim != 2 or M.shape[0] != M.shape[1] or b.shape != (M.shape[0],):
            raise ValueError(f"{self.name}: matrix must be (s, s) and b (s,), got {M.shape} and {b.shape}.")
        object.__setattr__(self, "matrix", M)
        object.__setattr__(self, "b", b)
        exact = poly.exact_matrix(M)
        exact_update = poly.exact_matrix(M - np.outer(np.ones_like(b), b))
        z_scale = self.z_scale
        p = poly.trim(poly.det_one_minus_z(exact_update), z_scale)
        q = poly.trim(poly.det_one_minus_z(exact), z_scale)
        object.__setattr__(self, "_p", p)
        object.__setattr__(self, "_q", q)
        object.__setattr__(self, "_n", poly.trim(poly.wronskian(p, q), z_scale))

    @classmethod
    def from_tableau(cls, tableau: ButcherTableau | RosenbrockTableau) -> OneStepStability:
        """The stability function of a :class:`ButcherTableau` or :class:`RosenbrockTableau`."""
        if isinstance(tableau, ButcherTableau):
            return cls(tableau.name, tableau.A, tableau.b, "Runge-Kutta", tableau.reference)
        if isinstance(tableau, RosenbrockTableau):
            return cls(tableau.name, tableau.beta, tableau.b, "Rosenbrock", tableau.reference)
        raise ValueError(
            f"tableau={tableau!r} is neither a ButcherTableau nor a RosenbrockTableau."
        )

    @property
    def z_scale(self) -> float:
        """Size of ``M`` (largest diagonal entry, else largest entry, else 1): ``1/z_scale``
        is the size of ``z`` at which the method's poles sit."""
        for values in (np.diag(self.matrix), self.matrix):
            top = float(np.max(np.abs(values)))
            if top > 0.0:
                return top
        return 1.0

    @property
    def numerator(self) -> np.ndarray:
        return poly.as_float(self._p)

    @property
    def denominator(self) -> np.ndarray:
        return poly.as_float(self._q)

    @property
    def derivative_numerator(self) -> np.ndarray:
        return poly.as_float(self._n)

    @property
    def infinity_exponent(self) -> int:
        """``deg P - deg Q``: ``|R(z)| ~ C |z|^infinity_exponent`` as ``|z| -> inf``."""
        return poly.degree(self._p) - poly.degree(self._q)

    @property
    def decay_exponent(self) -> float:
        """``deg(P'Q - PQ') - 2 deg Q``: ``|R'(z)| ~ C |z|^decay_exponent`` as ``|z| -> inf``."""
        return float(poly.degree(self._n) - 2 * poly.degree(self._q))

    @property
    def limit_at_infinity(self) -> float:
        """``|R(inf)|``: ``inf`` when ``deg P > deg Q``, ``0`` when ``deg P < deg Q``."""
        exponent = self.infinity_exponent
        if exponent != 0:
            return float("inf") if exponent > 0 else 0.0
        return abs(float(self._p[-1] / self._q[-1]))

    def poles(self) -> np.ndarray:
        """Zeros of ``Q`` (the reciprocals of the nonzero eigenvalues of ``M``)."""
        return np.polynomial.polynomial.polyroots(self.denominator) if len(self._q) > 1 else np.array([])

    def R(self, z) -> np.ndarray:
        """``R(z) = P(z)/Q(z)``."""
        return _rational(self.numerator, self.denominator, 1, z)

    def dR(self, z) -> np.ndarray:
        """``R'(z) = (P'Q - PQ')(z) / Q(z)^2``."""
        return _rational(self.derivative_numerator, self.denominator, 2, z)

    def amplification(self, z) -> np.ndarray:
        """``|R(z)|``: the factor by which one step scales the mode with ``h*lam = z``."""
        return np.abs(self.R(z))

    def boundary_locus(self, theta) -> np.ndarray:
        """Every ``z`` with ``R(z) = exp(i theta)`` for the given angles: the curve
        ``|R(z)| = 1`` that bounds the stability region (zeros of ``P - e^(i theta) Q``)."""
        p, q = self.numerator, self.denominator
        n = max(len(p), len(q))
        p = np.pad(p, (0, n - len(p)))
        q = np.pad(q, (0, n - len(q)))
        points = [np.roots((p - np.exp(1j * t) * q)[::-1]) for t in np.atleast_1d(theta)]
        return np.concatenate(points) if points else np.array([], dtype=np.complex128)

    def n_step(self, z, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``y_n`` and ``dy_n/dz`` after ``n`` steps from ``y_0 = 1``: ``R^n`` and ``n R^(n-1) R'``."""
        r = self.R(z)
        return r**n, n * r ** (n - 1) * self.dR(z)

    def n_step_decay_exponent(self, n: int) -> float:
        """Exponent of ``|d(R^n)/dz| = n |R|^(n-1) |R'|`` as ``|z| -> inf``."""
        return float((n - 1) * self.infinity_exponent) + self.decay_exponent

    def __repr__(self) -> str:
        degrees = f"deg P = {poly.degree(self._p)}, deg Q = {poly.degree(self._q)}"
        return f"OneStepStability({self.name!r}, {self.family}, {degrees})"


def _rational(num: np.ndarray, den: np.ndarray, power: int, z) -> np.ndarray:
    """``num(z) / den(z)**power`` without overflow or cancellation at large ``|z|``.

    For ``|z| > 1`` both polynomials are evaluated in ``w = 1/z`` with reversed
    coefficients, ``num(z) = z^deg(num) num_rev(w)``, so the leading coefficients dominate
    as they should instead of being swamped by powers of ``z``. (Evaluating the resolvent
    ``b^T (I - z M)^-2 1`` directly would cancel terms of size one down to ``|z|^-2`` for
    methods with an explicit first stage, losing all digits by ``|z| ~ 1e8``.)
    """
    z = np.asarray(z, dtype=np.complex128)
    polyval = np.polynomial.polynomial.polyval
    out = np.empty_like(z)
    inner = np.abs(z) <= 1.0
    out[inner] = polyval(z[inner], num) / polyval(z[inner], den) ** power
    w = 1.0 / z[~inner]
    shift = power * (len(den) - 1) - (len(num) - 1)
    out[~inner] = w**shift * polyval(w, num[::-1]) / polyval(w, den[::-1]) ** power
    return out
