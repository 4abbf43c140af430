"""The README's demo: the vanishing gradient on three problems, every solver family, forward and adjoint.

``pystiffsens demo --out DIR`` (or :func:`run`) sweeps each :data:`CASES` problem over a
log-spaced stiffness grid with the adaptive solvers :data:`ADAPTIVE` (``rtol=1e-6``) and,
where the case gives a ``dt``, the fixed-step references :data:`FIXED`, for each of
:data:`SENSITIVITIES`, and writes the full report. The sweeps checkpoint into ``DIR``, so an
interrupted demo resumes where it stopped.

The fixed-step references take steps far longer than the fast time scale ``1/lam``: their
gradients lose the fast mode, which is what the demo shows. Instead of each sweep's warning
about rows far from the closed-form gradient, the demo warns once and says which of those rows
that explains (:func:`warn_far_from_exact`).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _warnings, problems
from . import resume
from .report import coarse_fixed_steps, report
from .schema import FAR_FROM_EXACT
from .sweep import FarFromExactWarning, sweep


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
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FarFromExactWarning)  # replaced by the demo's own, below
        for case in cases:
            problem = problems.get(case.problem, **case.options)
            grid = np.geomspace(case.stiffness[0], case.stiffness[1], n_stiffness)
            common = dict(rtol=rtol, atol=atol, progress=progress, out_dir=out_dir)
            if adaptive:
                frames.append(sweep(problem, grid, list(adaptive), list(sensitivities), **common))
            if fixed and case.dt is not None:
                frames.append(sweep(problem, grid, list(fixed), list(sensitivities), dt=case.dt, **common))
    frame = pd.concat(frames, ignore_index=True)
    warn_far_from_exact(frame)
    return report(frame, out_dir)


def warn_far_from_exact(frame: pd.DataFrame) -> None:
    """One ``RuntimeWarning`` for the demo's rows flagged ``far_from_exact``, saying which of them
    are fixed-step rows with ``dt * lam > 1`` (expected: coarse steps lose the fast mode) and
    listing the others per solver and sensitivity; nothing when no row is flagged."""
    flagged = frame[frame["far_from_exact"].astype(bool)]
    if flagged.empty:
        return
    coarse = coarse_fixed_steps(flagged)
    message = (
        f"{len(flagged)} of {len(frame)} gradient rows are far from the closed-form gradient "
        f"(rel_error_exact > {FAR_FROM_EXACT:g}, column far_from_exact; listed in summary.md)."
    )
    if coarse.any():
        solvers = ", ".join(dict.fromkeys(flagged.loc[coarse, "solver"]))
        message += (
            f" {'All' if coarse.all() else int(coarse.sum())} of them come from the fixed-step references "
            f"({solvers}), whose step dt is longer than 1/lam, the time scale of the fast mode. Coarse fixed "
            "steps lose the fast mode: their gradient follows the method's stability function, not the exact "
            "gradient's exponential decay. That is what the demo shows: expected, not a malfunction (README, "
            "'What the demo shows')."
        )
    if not coarse.all():
        rest = flagged[~coarse]
        groups = rest.groupby(["problem", "solver", "sensitivity"], sort=False)
        message += f" The other {len(rest)} are not explained that way: " + "; ".join(
            f"{problem} {solver}/{sensitivity}: {len(rows)} row(s)" for (problem, solver, sensitivity), rows in groups
        ) + "."
    _warnings.warn(message, RuntimeWarning)
