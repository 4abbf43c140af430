"""Stability of the backward differentiation formulas BDF1–BDF6.

BDF-k (Hairer, Nørsett & Wanner, *Solving ODEs I*, 2nd ed., 1993, Sect. III.1) is
``sum_{j=1..k} (1/j) nabla^j y_{n+k} = h f_{n+k}``. On ``y' = lam*y`` with ``z = h*lam`` a
solution ``y_n = zeta^n`` needs a root of the characteristic equation

    rho(zeta) - z sigma(zeta) = 0,   rho(zeta) = sum_j (1/j) zeta^(k-j) (zeta - 1)^j,
    sigma(zeta) = zeta^k.

The *principal root* is the one with ``zeta(0) = 1``; it plays the part of the one-step
``R(z)`` and ``zeta'(z) = sigma(zeta) / (rho'(zeta) - z sigma'(zeta))`` that of ``R'(z)``.

Root asymptotics. With ``w = 1/zeta``, ``rho(zeta)/sigma(zeta) = sum_j (1/j)(1 - w)^j``, a
polynomial in ``w`` of degree ``k`` with leading coefficient ``(-1)^k / k``. As
``|z| -> inf`` every root therefore has ``w^k ~ (-1)^k k z``, so ``|zeta| ~ (k|z|)^(-1/k)``,
and ``zeta' = -w'/w^2 = -1/(w^2 d/dw[rho/sigma]) ~ -(-1)^k w^-(k+1)``, so

    |zeta'(z)| ~ (k |z|)^-(1 + 1/k)

in every direction. The exponent ``-(1 + 1/k)`` lies between the ``-2`` of rational
stability functions and the ``-1`` bound of Fronk & Petzold (arXiv:2508.01519, 2025) and
tends to that bound as ``k`` grows.

Which root is principal is decided by continuation along the ray from ``0`` to ``z``
(:meth:`BDFStability.principal_root`). Where the ray meets a double root (for BDF2 on the
negative real axis at ``z = -1/2``, beyond which the two roots are complex conjugates) the
continuation may take either branch; on the real axis the two have the same modulus, so
``|R|`` and ``|R'|`` do not depend on the choice. At the double root itself
``rho' - z sigma'`` vanishes and ``zeta'`` is infinite.

The realised ``n``-step map also depends on how the method starts. pystiffsens' fixed-step
BDF starts with the lower orders: step ``m`` uses BDF-``min(m, k)`` (for BDF2, one
implicit-Euler step), which :meth:`BDFStability.n_step` follows.
"""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from math import comb

import numpy as np

from . import _polynomial as poly

MAX_ORDER = 6
"""BDF-k is zero-stable for ``k <= 6`` only (HNW I Sect. III.3)."""

_TRACK_START = 1e-4
_TRACK_RATIO = 1.05


@functools.cache
def _rho(k: int) -> poly.Poly:
    """``rho(zeta) = sum_{j=1..k} (1/j) zeta^(k-j) (zeta - 1)^j``, ascending powers."""
    out: poly.Poly = (Fraction(0),)
    for j in range(1, k + 1):
        shifted = (Fraction(0),) * (k - j) + tuple(Fraction(comb(j, i) * (-1) ** (j - i)) for i in range(j + 1))
        out = poly.add(out, poly.scale(shifted, Fraction(1, j)))
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class BDFStability:
    """Characteristic roots of BDF-``order``; build it with :func:`bdf`.

    Attributes
    ----------
    order : ``k``.
    rho : coefficients of ``rho`` in ascending powers of ``zeta`` (``sigma = zeta^k``).
    """

    order: int
    _rho: poly.Poly = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_rho", _rho(self.order))

    family = "multistep"
    reference = (
        "E. Hairer, S. P. Nørsett, G. Wanner, Solving Ordinary Differential Equations I, 2nd ed., "
        "Springer, 1993, Sect. III.1."
    )

    @property
    def name(self) -> str:
        return f"BDF{self.order}"

    @property
    def rho(self) -> np.ndarray:
        return poly.as_float(self._rho)

    @property
    def decay_exponent(self) -> float:
        """``-(1 + 1/k)``: ``|zeta'(z)| ~ (k|z|)^-(1 + 1/k)`` (derived in the module docstring)."""
        return -(1.0 + 1.0 / self.order)

    @property
    def limit_at_infinity(self) -> float:
        """Largest root modulus as ``z -> inf``: the roots of ``sigma = zeta^k``, all zero."""
        return 0.0

    def poles(self) -> np.ndarray:
        """The ``z`` where the leading coefficient ``rho_k - z`` vanishes and a root becomes infinite."""
        return np.array([float(self._rho[-1])])

    def roots(self, z) -> np.ndarray:
        """All ``k`` roots of ``rho(zeta) - z sigma(zeta)``, shape ``z.shape + (k,)``."""
        z = np.asarray(z, dtype=np.complex128)
        k = self.order
        coeffs = np.broadcast_to(self.rho.astype(np.complex128), z.shape + (k + 1,)).copy()
        coeffs[..., k] -= z
        companion = np.zeros(z.shape + (k, k), dtype=np.complex128)
        companion[..., np.arange(1, k), np.arange(k - 1)] = 1.0
        companion[..., :, k - 1] = -coeffs[..., :k] / coeffs[..., k : k + 1]
        return np.linalg.eigvals(companion)

    def principal_root(self, z) -> np.ndarray:
        """The root continued from ``zeta(0) = 1`` along the ray from ``0`` to each ``z``.

        All points are tracked together on radii ``0, 1e-4, 1.05e-4, ...`` (each clamped at
        its own ``|z|``), taking at every radius the root nearest the previous one.
        """
        z = np.asarray(z, dtype=np.complex128)
        flat = z.reshape(-1)
        radius = np.abs(flat)
        direction = np.where(radius > 0, flat / np.where(radius > 0, radius, 1.0), 1.0)
        top = float(radius.max(initial=0.0))
        n_radii = 1 + max(0, int(np.ceil(np.log(max(top, _TRACK_START) / _TRACK_START) / np.log(_TRACK_RATIO))))
        grid = np.concatenate([[0.0], _TRACK_START * _TRACK_RATIO ** np.arange(n_radii)])
        current = np.ones_like(flat)
        for r in grid:
            candidates = self.roots(np.minimum(r, radius) * direction)
            nearest = np.argmin(np.abs(candidates - current[:, None]), axis=1)
            current = candidates[np.arange(flat.size), nearest]
        return current.reshape(z.shape)

    def R(self, z) -> np.ndarray:
        """The principal root ``zeta(z)``."""
        return self.principal_root(z)

    def _root_derivative(self, zeta, z):
        k = self.order
        drho = np.polynomial.polynomial.polyval(zeta, poly.as_float(poly.derivative(self._rho)))
        return zeta**k / (drho - z * k * zeta ** (k - 1))

    def dR(self, z) -> np.ndarray:
        """``zeta'(z) = sigma(zeta) / (rho'(zeta) - z sigma'(zeta))`` at the principal root."""
        z = np.asarray(z, dtype=np.complex128)
        return self._root_derivative(self.principal_root(z), z)

    def amplification(self, z) -> np.ndarray:
        """Largest root modulus: the growth factor per step of the worst solution mode."""
        return np.abs(self.roots(z)).max(axis=-1)

    def boundary_locus(self, theta) -> np.ndarray:
        """``z(theta) = rho(e^(i theta)) / sigma(e^(i theta))``: where a root has modulus 1."""
        zeta = np.exp(1j * np.atleast_1d(np.asarray(theta, dtype=np.float64)))
        return np.polynomial.polynomial.polyval(zeta, self.rho) / zeta**self.order

    def _step_coefficients(self, m: int) -> tuple[Fraction, poly.Poly]:
        """``alpha_0`` and ``alpha_1..alpha_j`` of step ``m`` (order ``j = min(m, k)``),
        from ``sum_l alpha_l y_{m-l} = z y_m``."""
        descending = _rho(min(m, self.order))[::-1]
        return descending[0], descending[1:]

    def n_step(self, z, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``y_n`` and ``dy_n/dz`` after ``n`` steps from ``y_0 = 1`` with the order ramp.

        Step ``m`` solves ``(alpha_0 - z) y_m = -sum_l alpha_l y_{m-l}``; differentiating,
        ``(alpha_0 - z) y_m' = y_m - sum_l alpha_l y'_{m-l}``.
        """
        z = np.asarray(z, dtype=np.complex128)
        ys, dys = [np.ones_like(z)], [np.zeros_like(z)]
        for m in range(1, n + 1):
            alpha0, alphas = self._step_coefficients(m)
            history = sum(float(a) * ys[m - l] for l, a in enumerate(alphas, start=1))
            d_history = sum(float(a) * dys[m - l] for l, a in enumerate(alphas, start=1))
            ys.append(-history / (float(alpha0) - z))
            dys.append((ys[m] - d_history) / (float(alpha0) - z))
        return ys[n], dys[n]

    def n_step_decay_exponent(self, n: int) -> float:
        """Exact exponent of ``|dy_n/dz|`` as ``|z| -> inf``, with the order ramp.

        ``y_n = N_n / D_n`` is rational with ``D_n = prod_m (alpha_0^(m) - z)``; the exponent is
        ``deg(N_n' D_n - N_n D_n') - 2 deg D_n``, computed in exact arithmetic.
        """
        numerators: list[poly.Poly] = [(Fraction(1),)]
        factors: list[poly.Poly] = []
        for m in range(1, n + 1):
            alpha0, alphas = self._step_coefficients(m)
            total: poly.Poly = (Fraction(0),)
            for l, a in enumerate(alphas, start=1):
                term = numerators[m - l]
                for factor in factors[m - l : m - 1]:
                    term = poly.mul(term, factor)
                total = poly.add(total, poly.scale(term, -a))
            numerators.append(total)
            factors.append((alpha0, Fraction(-1)))
        denominator: poly.Poly = (Fraction(1),)
        for factor in factors:
            denominator = poly.mul(denominator, factor)
        return float(poly.degree(poly.wronskian(numerators[n], denominator)) - 2 * n)

    def __repr__(self) -> str:
        return f"BDFStability(order={self.order})"


def bdf(order: int) -> BDFStability:
    """The stability theory of the fixed-order BDF-``order`` method (``1 <= order <= 6``)."""
    if not (isinstance(order, (int, np.integer)) and not isinstance(order, bool) and 1 <= order <= MAX_ORDER):
        raise ValueError(
            f"BDF order={order!r} is not available; valid orders: 1 to {MAX_ORDER} "
            "(BDF-k is zero-stable only for k <= 6)."
        )
    return BDFStability(int(order))
