"""Solve outcomes in SciML's ``ReturnCode`` vocabulary.

A solve never raises for a numerical failure: it returns one of these codes, and every
quantity derived from a failed solve (states past the failure, gradients) is NaN.
"""

from __future__ import annotations

import enum


class ReturnCode(enum.IntEnum):
    """Outcome of a solve, named as in SciMLBase's ``ReturnCode``.

    Stored as a small integer inside jitted code; ``str(code)``, ``f"{code}"`` and
    ``code.name`` give the SciML word (``"Success"``), as Julia prints ``retcode``.
    """

    Success = 0
    MaxIters = 1  #: ``max_steps`` reached before the end of the time span.
    DtLessThanMin = 2  #: the step size underflowed (repeated error-test failures).
    Unstable = 3  #: non-finite values appeared, or a backward solve diverged.
    ConvergenceFailure = 4  #: the Newton iteration of an implicit method did not converge.
    Failure = 5  #: a failure none of the above names (SciMLBase's general word): a preequilibration that
    #: reached no steady state, an error inside Julia, a Dask task that kept failing.

    def __str__(self) -> str:  # IntEnum would print the integer ("0") on Python >= 3.11
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)

    @classmethod
    def from_value(cls, value) -> ReturnCode:
        return cls(int(value))

