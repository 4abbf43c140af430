"""Stiffness proxies of Jacobians, and the stiffness of a problem along its solution.

``stiffness_ratio``, ``spectral_radius`` (Gelfand, power method, eigenvalues),
``singular_ratio``, ``singular_max`` and ``frobenius`` act on one matrix or a batch (:mod:`.proxies`);
``stiffness_along_solution`` evaluates them at the Jacobian of every accepted step of a
solve (:mod:`.along_solution`); ``stiffness_by_parameter`` finds the parameters that set the
stiffness, the knobs for a sweep (:mod:`.by_parameter`).
"""

from .along_solution import PROXY_COLUMNS, rhs_jacobians, stiffness_along_solution
from .by_parameter import stiffness_by_parameter
from .proxies import (
    GELFAND_SQUARINGS,
    POWER_ITERATIONS,
    SPECTRAL_RADIUS_METHODS,
    STIFFNESS_RATIO_PARTS,
    frobenius,
    singular_max,
    singular_ratio,
    spectral_radius,
    stiffness_ratio,
)

__all__ = [
    "GELFAND_SQUARINGS",
    "POWER_ITERATIONS",
    "PROXY_COLUMNS",
    "SPECTRAL_RADIUS_METHODS",
    "STIFFNESS_RATIO_PARTS",
    "frobenius",
    "rhs_jacobians",
    "singular_max",
    "singular_ratio",
    "spectral_radius",
    "stiffness_along_solution",
    "stiffness_by_parameter",
    "stiffness_ratio",
]
