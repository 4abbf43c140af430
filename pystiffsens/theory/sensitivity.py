"""The parameter sensitivity that ``n`` fixed steps pass to a stiff mode.

On ``y' = lam*y``, ``y(0) = y0``, ``n`` steps of size ``h`` of a one-step method give
``y_n = R(z)^n y0`` with ``z = h*lam``, so (Fronk & Petzold, arXiv:2508.01519, 2025)

    dy_n/dlam = n h R(z)^(n-1) R'(z) y0,

while the exact flow has ``d/dlam [e^(lam t_n) y0] = t_n e^(lam t_n) y0``. For BDF the
``n``-step map is the exact recurrence of :meth:`~pystiffsens.theory.BDFStability.n_step`
(with its order ramp) and ``dy_n/dlam = h dy_n/dz y0``.
"""

from __future__ import annotations

import math

import numpy as np

from .methods import stability_function


def n_step_sensitivity(method, lam, h: float, n: int, y0: float = 1.0) -> np.ndarray:
    """``dy_n/dlam`` for ``y' = lam*y``, ``y(0) = y0`` after ``n`` fixed steps of size ``h``.

    ``lam`` may be an array (real or complex); the result has its shape and is complex.
    Sign convention: ``lam`` is the eigenvalue, negative for a decaying mode. pystiffsens'
    ``dahlquist`` problem is ``y' = -lam_p*y``, so its gradient is
    ``-n_step_sensitivity(method, -lam_p, h, n)``.
    """
    if not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"n={n!r} must be a positive integer number of steps.")
    if not (isinstance(h, (int, float, np.floating)) and math.isfinite(h) and h > 0):
        raise ValueError(f"h={h!r} must be a positive finite step size.")
    lam = np.asarray(lam, dtype=np.complex128)
    if not np.all(np.isfinite(lam)):
        raise ValueError(f"lam={lam!r} must be finite.")
    _, dy_dz = stability_function(method).n_step(h * lam, int(n))
    return h * y0 * dy_dz
