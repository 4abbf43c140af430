"""Time-triggered SBML events as functions of the parameters and of the state."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class TimeEvent:
    """An SBML event whose trigger is ``time >= T(p)`` (or ``time > T(p)``; SBML L3V2 core, Sect. 4.12).

    Attributes
    ----------
    id : the event's id.
    time : ``time(p) -> scalar``, the trigger time ``T`` from the model's inputs (jax-traceable).
    assign : ``assign(t, y, p) -> y_new``: the state after the event fires at ``t``; every
        assignment is evaluated with the values before the event and then applied at once
        (events without delay, Sect. 4.12). Species are assigned in their own units
        (concentration unless ``hasOnlySubstanceUnits``).
    initial_value : the trigger's ``initialValue`` (True in Level 2). With ``True`` an event whose
        trigger time is at or before the start of the simulation does not fire; with ``False``
        it fires at the start (Sect. 4.12). ``persistent`` does not matter for a trigger that,
        once true, stays true.
    """

    id: str
    time: Callable
    assign: Callable
    initial_value: bool = True
