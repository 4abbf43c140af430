"""One batch of a sweep: one solver and one sensitivity method over the stiffness values still to compute.

A :class:`Batch` holds resolved objects (the solver, the sensitivity choice, the options that
solver runs with) and the backend's name, so it can be prepared in this process or pickled
to a Dask worker (:mod:`.distributed`) and prepared there. Preparing compiles
(:meth:`~pystiffsens.backends.Backend.gradient_batch`); the returned ``run()`` computes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from .. import backends
from ..backends.base import BatchResult, Choice
from ..options import Options


@dataclasses.dataclass(frozen=True)
class Batch:
    """A (solver, sensitivity) pair of a sweep.

    ``key`` the values of :data:`~pystiffsens.study.schema.KEY_COLUMNS`; ``done`` the rows a
    checkpoint already holds; ``todo`` the mask of the grid values still to compute.
    """

    key: dict
    backend: str
    solver: object
    choice: Choice
    options: Options
    device: str
    done: pd.DataFrame
    todo: np.ndarray

    def prepare(self, problem, stiffness: np.ndarray) -> Callable[[], BatchResult]:
        """Compile the batch over ``stiffness``; return its ``run()``."""
        backend = backends.get(self.backend)
        return backend.gradient_batch(problem, stiffness, self.solver, self.choice, self.options, self.device)

    def without_rows(self) -> Batch:
        """The batch without its checkpoint rows (what a worker needs)."""
        return dataclasses.replace(self, done=self.done.iloc[:0])
