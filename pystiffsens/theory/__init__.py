"""Stability-function theory of the vanishing gradient: ``R(z)``, ``R'(z)`` and their decay.

Fronk & Petzold ("The Vanishing Gradient Problem for Stiff Neural Differential Equations",
arXiv:2508.01519, 2025) show that the sensitivity a stiff mode passes to its rate parameter
is carried by ``R'(z)``, the derivative of the method's stability function, which decays
like ``|z|^-2`` for the common A-/L-stable one-step methods and never slower than ``|z|^-1``
for any A-stable method. This package computes it for every method pystiffsens has and for
user-supplied tableaux and BDF orders; the exponential integrators (``R(z) = e^z``) have the
exponent ``-inf``, the exact flow's decay.
"""

from ..solvers.stability import BDFStability, ExponentialStability, OneStepStability, bdf
from .asymptotics import (
    decay_exponent,
    format_exponent,
    n_step_decay_exponent,
    numerical_decay_exponent,
    sector_decay_exponents,
)
from .checks import a_alpha_angle, is_a_stable, is_l_stable
from .methods import method_names, stability_function
from .plots import plot_stability
from .sensitivity import n_step_sensitivity
from .summary import summary

__all__ = [
    "BDFStability",
    "ExponentialStability",
    "OneStepStability",
    "a_alpha_angle",
    "bdf",
    "decay_exponent",
    "format_exponent",
    "is_a_stable",
    "is_l_stable",
    "method_names",
    "n_step_decay_exponent",
    "n_step_sensitivity",
    "numerical_decay_exponent",
    "plot_stability",
    "sector_decay_exponents",
    "stability_function",
    "summary",
]
