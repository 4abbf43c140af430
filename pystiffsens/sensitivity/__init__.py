"""Sensitivity algorithms, named as in SciMLSensitivity.

Every algorithm works with every solver: it only uses the solver contract and the shared
integration loop.

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

``pss.gradient(..., sensitivity=None)`` (or ``"auto"``) picks one the way
SciMLSensitivity's default does (``automatic_sensealg_choice``): forward mode when states +
parameters <= :data:`FORWARD_MODE_LIMIT`, an adjoint otherwise
(:func:`pystiffsens.gradient.choose_sensitivity`).
"""

from __future__ import annotations

from .._validation import choose
from .adjoints import BacksolveAdjoint, GaussAdjoint, InterpolatingAdjoint
from .base import AbstractSensitivity
from .forward import ForwardSensitivity
from .forward_diff import ForwardDiffSensitivity
from .reverse_diff import ReverseDiffAdjoint

_ALGORITHMS = {
    cls.name: cls
    for cls in (
        ForwardDiffSensitivity,
        ForwardSensitivity,
        ReverseDiffAdjoint,
        BacksolveAdjoint,
        InterpolatingAdjoint,
        GaussAdjoint,
    )
}
#: States + parameters up to which the automatic choice is forward mode (SciMLSensitivity's 100).
FORWARD_MODE_LIMIT = 100
ALIASES = {"forward": "ForwardDiffSensitivity", "adjoint": "InterpolatingAdjoint"}
#: SciMLSensitivity algorithms that exist only on the Julia backend.
JULIA_ONLY = ("QuadratureAdjoint", "ZygoteAdjoint")


def names() -> list[str]:
    """Names of the native sensitivity algorithms (aliases: ``forward``, ``adjoint``)."""
    return list(_ALGORITHMS)


def get(sensitivity) -> AbstractSensitivity:
    """The algorithm for a name or alias (an :class:`AbstractSensitivity` instance passes through)."""
    if isinstance(sensitivity, AbstractSensitivity):
        return sensitivity
    if isinstance(sensitivity, str) and sensitivity in JULIA_ONLY:
        raise ValueError(
            f"sensitivity={sensitivity!r} exists only on backend='julia' (SciMLSensitivity). "
            f"Native choices: {', '.join(names())}; GaussAdjoint is the native quadrature adjoint."
        )
    return _ALGORITHMS[choose("sensitivity", sensitivity, names(), ALIASES)]()


__all__ = [
    "AbstractSensitivity",
    "BacksolveAdjoint",
    "ForwardDiffSensitivity",
    "ForwardSensitivity",
    "GaussAdjoint",
    "InterpolatingAdjoint",
    "ReverseDiffAdjoint",
    "ALIASES",
    "FORWARD_MODE_LIMIT",
    "get",
    "names",
]
