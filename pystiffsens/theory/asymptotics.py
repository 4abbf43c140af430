"""How fast ``|R'(z)|`` decays as ``|z| -> inf``: exact exponents and measured slopes.

The exponent ``e`` in ``|R'(z)| ~ C |z|^e`` governs the gradient that a stiff mode passes
to its rate parameter through one step (Fronk & Petzold, arXiv:2508.01519, 2025): ``-2``
for rational stability functions with ``R(z) - R(inf) ~ c/z`` (implicit Euler, the
trapezoidal rule and the A-/L-stable Runge–Kutta and Rosenbrock methods), never slower
than ``-1`` for any A-stable method. :func:`decay_exponent` is the exact value derived from
the method's coefficients; :func:`numerical_decay_exponent` measures the log–log slope of
``|R'|`` at large ``|z|`` along a ray (for BDF from the computed roots, independently of the
derivation; for one-step methods from the full rational function, showing where its
leading term takes over), and :func:`sector_decay_exponents` does so on rays filling a
sector ``|arg(-z)| <= alpha``.

Exponential integrators have ``R(z) = e^z``, whose ``|R'|`` decays faster than any power: their
exponent is ``-inf`` (exact and measured), which :func:`format_exponent` prints in words.
"""

from __future__ import annotations

import math

import numpy as np

from .methods import stability_function

FASTER_THAN_ANY_POWER = "exponential (faster than any power)"
"""How :func:`format_exponent` prints an exponent of ``-inf``."""


def format_exponent(value, spec: str = ".3g") -> str:
    """A decay exponent as text: ``format(value, spec)``, :data:`FASTER_THAN_ANY_POWER` for ``-inf``,
    ``n/a`` where there is none (NaN, None)."""
    if value is None or np.isnan(value):
        return "n/a"
    return FASTER_THAN_ANY_POWER if value == -np.inf else format(value, spec)


def decay_exponent(method) -> float:
    """Exact exponent ``e`` of ``|R'(z)| ~ C |z|^e`` as ``|z| -> inf``, in every direction.

    One-step methods: ``deg(P'Q - PQ') - 2 deg Q`` of ``R = P/Q``. BDF-k: ``-(1 + 1/k)``
    from the asymptotics of the principal root. ``method`` as in
    :func:`~pystiffsens.theory.stability_function`.
    """
    return stability_function(method).decay_exponent


def n_step_decay_exponent(method, n: int) -> float:
    """Exact exponent of ``|dy_n/dz|`` after ``n`` fixed steps on ``y' = lam*y``.

    This is the slope a fixed-step sweep with ``n`` steps measures. One-step methods:
    ``(n - 1)(deg P - deg Q) + decay_exponent``. BDF: from the exact rational ``n``-step map
    with the order ramp of :meth:`~pystiffsens.theory.BDFStability.n_step`.
    """
    if not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"n={n!r} must be a positive integer number of steps.")
    return stability_function(method).n_step_decay_exponent(int(n))


def _ray(radii: np.ndarray, angle_deg: float) -> np.ndarray:
    return -radii * np.exp(1j * math.radians(angle_deg))


def numerical_decay_exponent(method, angle_deg: float = 0.0, radii=(1e8, 1e10), n_points: int = 9) -> float:
    """Least-squares slope of ``log|R'(z)|`` against ``log|z|`` on ``z = -r e^(i angle)``.

    ``r`` runs over ``n_points`` log-spaced radii in ``radii``. ``angle_deg = 0`` is the
    negative real axis. The default radii are large because the BDF-k roots approach their
    asymptotics slowly, with a relative correction of order ``|z|^(-1/k)``. Where ``|R'|``
    underflows to zero on the ray (``e^z`` of the exponential integrators) it decays faster than
    any power there, and the slope is ``-inf``.
    """
    lo, hi = (float(r) for r in radii)
    if not (0.0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"radii={radii!r} must be two increasing positive finite numbers.")
    if not (isinstance(n_points, (int, np.integer)) and n_points >= 2):
        raise ValueError(f"n_points={n_points!r} must be an integer >= 2.")
    r = np.geomspace(lo, hi, n_points)
    values = np.abs(stability_function(method).dR(_ray(r, angle_deg)))
    if np.any(values == 0.0):
        return -math.inf
    return float(np.polyfit(np.log(r), np.log(values), 1)[0])


def sector_decay_exponents(
    method, alpha_deg: float, n_rays: int = 9, radii=(1e8, 1e10)
) -> tuple[np.ndarray, np.ndarray]:
    """Measured decay exponents on ``n_rays`` rays spanning ``|arg(-z)| <= alpha_deg``.

    Returns ``(angles_deg, exponents)``. The exact exponent is the same on every ray (the
    leading coefficients that set it do not depend on the direction), so the measured ones
    agree with :func:`decay_exponent` wherever ``radii`` is large enough for the leading
    term to dominate.
    """
    if not (0.0 <= alpha_deg <= 90.0):
        raise ValueError(f"alpha_deg={alpha_deg!r} must lie in [0, 90] (the left half-plane).")
    if not (isinstance(n_rays, (int, np.integer)) and n_rays >= 1):
        raise ValueError(f"n_rays={n_rays!r} must be a positive integer.")
    angles = np.linspace(-alpha_deg, alpha_deg, n_rays) if n_rays > 1 else np.array([0.0])
    exponents = np.array([numerical_decay_exponent(method, a, radii) for a in angles])
    return angles, exponents
