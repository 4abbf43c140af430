"""Shared test setup: float64 JAX via the package import, and common problems."""

import pystiffsens  # noqa: F401  (switches JAX to float64)

ADAPTIVE = ["Rodas4", "Rodas5P", "KenCarp4", "FBDF"]
FIXED = ["ImplicitEuler", "Trapezoid", "BDF2"]
ALL_SOLVERS = ADAPTIVE + FIXED
