"""Coefficient tables of the built-in implicit methods, one method a module."""

from ._base import ButcherTableau, RosenbrockTableau
from .kencarp4 import KENCARP4, KENCARP4_EXPLICIT
from .kvaerno5 import KVAERNO5
from .radau import RADAU5
from .references import IMPLICIT_EULER, TRAPEZOID
from .rodas4 import RODAS4
from .rodas5p import RODAS5P
from .rosenbrock23 import ROSENBROCK23
from .trbdf2 import TRBDF2

__all__ = [
    "ButcherTableau",
    "RosenbrockTableau",
    "RODAS4",
    "RODAS5P",
    "KENCARP4",
    "KENCARP4_EXPLICIT",
    "IMPLICIT_EULER",
    "TRAPEZOID",
    "ROSENBROCK23",
    "TRBDF2",
    "KVAERNO5",
    "RADAU5",
]
