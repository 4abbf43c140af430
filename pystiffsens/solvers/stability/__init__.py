"""Stability functions derived from a method's coefficients: the facts the theory is built on.

A one-step method's ``R(z)`` is an exact rational function of its tableau
(:class:`OneStepStability`); a BDF order's principal characteristic root plays that part for
multistep methods (:class:`BDFStability`, :func:`bdf`); exponential integrators have
``R(z) = e^z`` (:class:`ExponentialStability`). Every solver object returns its own
through ``solver.stability()``; :mod:`pystiffsens.theory` builds the decay exponents, plots
and summaries on top.
"""

from .exponential import ExponentialStability
from .multistep import BDFStability, bdf
from .one_step import OneStepStability

__all__ = ["BDFStability", "ExponentialStability", "OneStepStability", "bdf"]
