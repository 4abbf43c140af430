"""Linear stability of a method: A-stability, L-stability and the A(alpha) angle.

Definitions (Hairer & Wanner, *Solving ODEs II*, 2nd ed., 1996, Sects. IV.3 and V.2):
a method is *A-stable* when no solution mode of ``y' = lam*y`` grows for any ``h*lam = z``
with ``Re z <= 0``; *L-stable* when it is A-stable and ``R(inf) = 0``; *A(alpha)-stable*
when that holds on the sector ``|arg(-z)| <= alpha``.

The amplification (``|R(z)|``, or the largest characteristic root modulus of a multistep
method) is subharmonic in the left half-plane wherever the method has no pole there, so by
the maximum principle it stays ``<= 1`` on the whole half-plane once it does on the
imaginary axis and at infinity: :func:`is_a_stable` checks the poles, samples the
imaginary axis and takes the limit at infinity.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

from .methods import stability_function

STABILITY_TOL = 1e-9
"""Amplification above ``1 + STABILITY_TOL`` counts as growth: it absorbs the rounding of
``|R(iy)| = 1`` for methods that are exactly neutral on the imaginary axis (trapezoid)."""

_AXIS_SAMPLES = np.concatenate([[0.0], np.geomspace(1e-4, 1e8, 4000)])
_LOCUS_SAMPLES = 4096
_ORIGIN = 1e-12


def is_a_stable(method) -> bool:
    """Whether ``method`` is A-stable: no pole with ``Re z <= 0``, amplification ``<= 1``
    at ``z = i y`` for ``y = 0`` and 4000 log-spaced ``|y|`` in ``[1e-4, 1e8]`` (both signs),
    and at infinity."""
    theory = stability_function(method)
    if np.any(np.real(theory.poles()) <= 0.0):
        return False
    axis = 1j * np.concatenate([_AXIS_SAMPLES, -_AXIS_SAMPLES[1:]])
    return bool(np.all(theory.amplification(axis) <= 1.0 + STABILITY_TOL)
                and theory.limit_at_infinity <= 1.0 + STABILITY_TOL)


def is_l_stable(method) -> bool:
    """Whether ``method`` is L-stable: A-stable with ``R(z) -> 0`` as ``|z| -> inf``."""
    return is_a_stable(method) and stability_function(method).limit_at_infinity == 0.0


def a_alpha_angle(method) -> float:
    """The largest ``alpha`` (degrees, at most 90) such that ``method`` is A(alpha)-stable.

    A sector ``|arg(-z)| < alpha`` avoids a bounded region of instability exactly when it
    avoids the region's boundary, which lies on the boundary locus (the ``z`` where a root,
    or ``R(z)``, has modulus one). So ``alpha = min |arg(-z)|`` over the locus (``z != 0``),
    found on 4096 locus angles and refined by a bounded scalar minimisation around the
    smallest. Methods whose amplification at infinity exceeds one are unstable on every
    sector: ``alpha = 0``.
    """
    theory = stability_function(method)
    if theory.limit_at_infinity > 1.0 + STABILITY_TOL:
        return 0.0
    if is_a_stable(theory):
        return 90.0

    def angle_to_negative_axis(theta) -> float:
        points = theory.boundary_locus(theta)
        points = points[np.isfinite(points) & (np.abs(points) > _ORIGIN)]
        return float(np.min(np.abs(np.angle(-points)), initial=math.pi))

    thetas = np.linspace(0.0, 2.0 * math.pi, _LOCUS_SAMPLES + 1)[1:-1]
    angles = np.array([angle_to_negative_axis(t) for t in thetas])
    i = int(np.argmin(angles))
    lo, hi = thetas[max(i - 1, 0)], thetas[min(i + 1, thetas.size - 1)]
    refined = minimize_scalar(angle_to_negative_axis, bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-12})
    best = min(angles[i], float(refined.fun))
    return min(90.0, math.degrees(best))
