"""Coefficient tables of the built-in implicit methods, one method a module."""

from ._base import ButcherTableau, RosenbrockTableau
from .kencarp4 import KENCARP4
from .references import IMPLICIT_EULER, TRAPEZOID
from .rodas4 import RODAS4
from .rodas5p import RODAS5P

__all__ = [
    "ButcherTableau",
    "RosenbrockTableau",
    "RODAS4",
    "RODAS5P",
    "KENCARP4",
    "IMPLICIT_EULER",
    "TRAPEZOID",
]
