"""Sensitivity algorithms, named as in SciMLSensitivity: :data:`CATALOG`.

Every algorithm works with every solver: it only uses the solver contract and the shared
integration loop (:mod:`.base`).

==========================  =========================================================
``ForwardDiffSensitivity``  forward-mode AD through the solver (alias ``"forward"``)
``ForwardSensitivity``      forward sensitivity equations alongside the state
``ReverseDiffAdjoint``      discrete adjoint: reverse-mode AD with per-step checkpoints
``BacksolveAdjoint``        continuous adjoint, state re-integrated backward (unstable
                            on stiff problems: reported as ``Unstable``)
``InterpolatingAdjoint``    continuous adjoint on the forward dense output (alias
                            ``"adjoint"``)
``GaussAdjoint``            continuous adjoint, parameter integral by Gauss quadrature
==========================  =========================================================

With ``sensitivity=None`` (or ``"auto"``) the backend chooses, the way SciMLSensitivity's
default does (``automatic_sensealg_choice``): forward mode when states + parameters <=
:data:`FORWARD_MODE_LIMIT`, an adjoint otherwise (``pss.backends``).
"""

from __future__ import annotations

from ..catalog import Catalog
from .adjoints import BacksolveAdjoint, GaussAdjoint, InterpolatingAdjoint
from .base import AbstractSensitivity
from .forward import ForwardSensitivity
from .forward_diff import ForwardDiffSensitivity
from .reverse_diff import ReverseDiffAdjoint

CATALOG: Catalog[AbstractSensitivity] = Catalog("sensitivity", AbstractSensitivity)
for _algorithm in (
    ForwardDiffSensitivity(),
    ForwardSensitivity(),
    ReverseDiffAdjoint(),
    BacksolveAdjoint(),
    InterpolatingAdjoint(),
    GaussAdjoint(),
):
    CATALOG.register(_algorithm)

#: States + parameters up to which the automatic choice is forward mode (SciMLSensitivity's 100).
FORWARD_MODE_LIMIT = 100


def names() -> list[str]:
    """Names of the native sensitivity algorithms (aliases: ``forward``, ``adjoint``)."""
    return CATALOG.names()


def get(sensitivity) -> AbstractSensitivity:
    """The algorithm for a name or alias (an :class:`AbstractSensitivity` instance passes through)."""
    return CATALOG.get(sensitivity)


def is_auto(sensitivity) -> bool:
    """Whether ``sensitivity`` asks the backend to choose (None or ``"auto"``, any case)."""
    return sensitivity is None or (isinstance(sensitivity, str) and sensitivity.lower() == "auto")


__all__ = [
    "AbstractSensitivity",
    "BacksolveAdjoint",
    "CATALOG",
    "FORWARD_MODE_LIMIT",
    "ForwardDiffSensitivity",
    "ForwardSensitivity",
    "GaussAdjoint",
    "InterpolatingAdjoint",
    "ReverseDiffAdjoint",
    "get",
    "is_auto",
    "names",
]
