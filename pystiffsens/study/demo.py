"""The README's demo: the vanishing gradient on three problems, every solver family, forward and adjoint.

``pystiffsens demo --out DIR`` (or :func:`run`) sweeps each :data:`CASES` problem over a
log-spaced stiffness grid with the adaptive solvers :data:`ADAPTIVE` (``rtol=1e-6``) and,
where the case gives a ``dt``, the fixed-step references :data:`FIXED`, for each of
:data:`SENSITIVITIES`, and writes the full report. The sweeps checkpoint into ``DIR``, so an
interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from .. import problems
from . import resume
from .report import report
from .sweep import sweep


@dataclasses.dataclass(frozen=True)
class DemoCase:
    """One problem of the demo.

    Attributes
    ----------
    problem, options : the built-in problem and its factory options.
    stiffness : the (first, last) stiffness value of the log-spaced grid.
    dt : the step of the fixed-step references; ``None`` runs the adaptive solvers only.
    """

    problem: str
    options: dict
    stiffness: tuple[float, float]
    dt: float | None


CASES = (
    # dt = t_end: a single step, so the fixed-step gradient is -R'(-lam) and decays like |R'(z)|.
    DemoCase("dahlquist", {}, (1e1, 1e6), dt=1.0),
    DemoCase("prothero_robinson", {}, (1e1, 1e6), dt=0.1),
    # The initial transient of ROBER around the standard fast rate k2 = 3e7. No fixed-step
    # references: when the demo was written their Newton iteration failed on the first step
    # (ConvergenceFailure) for every k2 of the grid at dt = 0.05, and at k2 = 3e9 also with
    # dt = 0.01 and 1e-3.
    DemoCase("robertson", {"t_end": 1.0}, (3e5, 3e9), dt=None),
)
ADAPTIVE = ("Rodas5P", "KenCarp4", "FBDF")
FIXED = ("ImplicitEuler", "Trapezoid", "BDF2")
SENSITIVITIES = ("forward", "adjoint")
N_STIFFNESS = 7


def run(
    out_dir,
    *,
    cases=CASES,
    n_stiffness: int = N_STIFFNESS,
    adaptive=ADAPTIVE,
    fixed=FIXED,
    sensitivities=SENSITIVITIES,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    progress: bool = True,
) -> dict[str, Path]:
    """Run the demo sweeps and write their report to ``out_dir``; returns the report's paths.

    The keyword arguments shrink or change the study (e.g. fewer stiffness values or solvers
    for a quick check); an empty ``adaptive`` or ``fixed`` skips that family.
    """
    if not (adaptive or fixed):
        raise ValueError("adaptive and fixed are both empty: give at least one solver.")
    resume.prepare_out_dir(out_dir)  # a file, unwritable or impossible path fails before any sweep
    frames = []
    for case in cases:
        problem = problems.get(case.problem, **case.options)
        grid = np.geomspace(*case.stiffness, n_stiffness)
        common = dict(rtol=rtol, atol=atol, progress=progress, out_dir=out_dir)
        if adaptive:
            frames.append(sweep(problem, grid, list(adaptive), list(sensitivities), **common))
        if fixed and case.dt is not None:
            frames.append(sweep(problem, grid, list(fixed), list(sensitivities), dt=case.dt, **common))
    return report(pd.concat(frames, ignore_index=True), out_dir)
