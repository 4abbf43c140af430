"""The stability function of exponential integrators: ``R(z) = e^z``.

An exponential integrator whose linear part is the Jacobian of the step (Lawson's
integrating-factor Euler, Cox & Matthews' ETDRK4; :mod:`pystiffsens.solvers.exponential`)
reproduces the exact flow on ``y' = lam*y``: the nonlinear remainder ``f(y) - lam*y``
vanishes and one step is ``y1 = e^(h lam) y0``, so ``R(z) = e^z`` and ``R'(z) = e^z``.

Decay of the sensitivity. On the negative real axis ``|R'(-r)| = e^-r`` falls faster than
any power ``r^e``: the decay exponent in the sense of :mod:`pystiffsens.theory`
(``|R'(z)| ~ C |z|^e``) is ``-inf``. This is the exact flow's own decay,
``d/dlam e^(lam t) = t e^(lam t)``, so the integrator adds no vanishing of its own, unlike a
rational ``R`` whose ``|R'|`` decays like ``|z|^-2`` (Fronk & Petzold, "The Vanishing
Gradient Problem for Stiff Neural Differential Equations", arXiv:2508.01519, 2025; their
companion paper, arXiv:2412.01181, trains a stiff Van der Pol oscillator with
integrating-factor Euler for this reason). ``e^z`` has an essential singularity at infinity:
``|R| = 1`` on the whole imaginary axis, and ``limit_at_infinity`` is the limit along the
negative real axis, ``0``, as for the L-stable methods.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ExponentialStability:
    """``R(z) = e^z`` of the exponential integrator called ``name``."""

    name: str
    family = "exponential"
    reference = (
        "S. M. Cox, P. C. Matthews, Exponential time differencing for stiff systems, J. Comput. Phys. 176 "
        "(2002) 430-455; M. Hochbruck, A. Ostermann, Exponential integrators, Acta Numer. 19 (2010) 209-286."
    )

    @property
    def decay_exponent(self) -> float:
        """``-inf``: ``|R'(-r)| = e^-r`` decays faster than any power of ``r``."""
        return -np.inf

    @property
    def limit_at_infinity(self) -> float:
        """``|R(z)| -> 0`` as ``z -> -inf`` along the real axis."""
        return 0.0

    def R(self, z) -> np.ndarray:
        """``e^z``."""
        return np.exp(np.asarray(z, dtype=np.complex128))

    def dR(self, z) -> np.ndarray:
        """``R'(z) = e^z``."""
        return self.R(z)

    def amplification(self, z) -> np.ndarray:
        """``|e^z| = e^(Re z)``."""
        return np.abs(self.R(z))

    def boundary_locus(self, theta) -> np.ndarray:
        """``z = i theta``: the ``z`` with ``e^z = e^(i theta)`` on the principal branch (the others
        differ by ``2 pi i k``, on the same imaginary axis)."""
        return 1j * np.atleast_1d(np.asarray(theta, dtype=np.float64))

    def poles(self) -> np.ndarray:
        """None: ``e^z`` is entire."""
        return np.array([], dtype=np.complex128)

    def n_step(self, z, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``y_n = e^(n z)`` and ``dy_n/dz = n e^(n z)`` after ``n`` steps from ``y_0 = 1``."""
        r = self.R(np.asarray(z, dtype=np.complex128) * n)
        return r, n * r

    def n_step_decay_exponent(self, n: int) -> float:
        """``-inf`` for every ``n``: ``n e^(-n r)`` decays faster than any power of ``r``."""
        return -np.inf
