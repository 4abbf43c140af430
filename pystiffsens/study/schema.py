"""Columns of the tidy gradient frame that :func:`~pystiffsens.study.sweep` returns.

One row per (solver, sensitivity, stiffness value, scalar parameter entry). Array
parameters are expanded to ``name[i]`` / ``name[i,j]`` entries, as
:meth:`pystiffsens.results.GradientResult.flat_grad` does.
"""

from __future__ import annotations

from ..results import STAT_NAMES

KEY_COLUMNS = (
    "problem",
    "problem_id",
    "backend",
    "device",
    "rtol",
    "atol",
    "dt",
    "max_steps",
    "solver",
    "sensitivity",
)
"""What identifies one batch (one solver and sensitivity over a stiffness grid) of a sweep.

``problem_id`` fingerprints what the problem computes: its traced functions with the values
they capture, and its data (see :func:`~pystiffsens.study.resume.problem_id`);
``dt`` is NaN for adaptive steps. Two rows with equal keys and equal ``stiffness`` come from the
same computation, which is what lets an interrupted sweep resume.
"""

COUNTER_COLUMNS = STAT_NAMES + tuple(f"backward_{name}" for name in STAT_NAMES)
"""Cost counters: forward solve, then the backward (adjoint) solve. A counter the method does
not report (the backward ones of a forward-mode sensitivity) is -1."""

NOT_REPORTED = -1

GRADIENT_COLUMNS = (
    *KEY_COLUMNS,
    "stiffness",
    "param",
    "grad",
    "abs_grad",
    "exact_grad",
    "rel_error_exact",
    "far_from_exact",
    "loss",
    "status",
    *COUNTER_COLUMNS,
    "wall_time_s",
    "compile_time_s",
)
"""Every column of the gradient frame, in order.

* ``grad`` / ``abs_grad``: d loss / d param entry from the solver (NaN when the solve failed).
* ``exact_grad``: the same derivative from the problem's closed-form solution, NaN where none.
* ``rel_error_exact``: ``|grad - exact_grad|`` divided by the larger of the exact gradient's
  largest entry at this stiffness value (over every parameter entry: a normwise relative
  error) and the solve's ``atol`` (the floor for gradients that vanish in float64); NaN
  without a closed form or when the solve failed.
* ``far_from_exact``: ``rel_error_exact`` > :data:`FAR_FROM_EXACT`, i.e. the computed
  gradient has no correct digit of the exact one although its status may be ``Success``
  (:func:`~pystiffsens.study.sweep` warns and :func:`~pystiffsens.study.report` lists these rows).
* ``status``: the :class:`~pystiffsens.ReturnCode` name (``"Success"``, ``"MaxIters"``, ...).
* ``wall_time_s``: this stiffness value's share of the batch run time, i.e. the wall time of
  the compiled batched computation over the whole grid divided by the number of stiffness
  values in it. JAX: compilation excluded, and no compile runs alongside (in-process sweeps
  compile a group of batches, then run them). Julia: the whole ensemble call, Julia's own
  compilation included.
* ``compile_time_s``: the wall time of tracing and compiling that batch (the same for every
  row of the batch; it may overlap the compile of another batch of its group, see
  :data:`~pystiffsens.study.sweep.COMPILE_THREADS`); NaN for the Julia backend.
"""

SUCCESS = "Success"

FAR_FROM_EXACT = 1.0
"""Threshold of ``rel_error_exact`` above which a row is flagged ``far_from_exact``: an error
as large as the exact gradient itself."""

IDENTITY_COLUMNS = (*KEY_COLUMNS, "stiffness", "param")
"""What identifies one row: its batch key, stiffness value and parameter entry. A checkpoint
holds at most one row per identity."""

RESULT_COLUMNS = tuple(
    column for column in GRADIENT_COLUMNS if column not in IDENTITY_COLUMNS and column not in ("wall_time_s", "compile_time_s")
)
"""The computed values of a row (everything but its identity and timings): two rows with the
same identity must agree on these to be duplicates of one computation."""


def check_columns(frame, required, what: str = "frame") -> None:
    """Raise ``ValueError`` naming the columns of ``required`` that ``frame`` lacks."""
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} lacks the column(s) {missing}; expected a gradient frame from pss.sweep "
            f"with columns {list(GRADIENT_COLUMNS)}."
        )
