"""Solvers and sensitivity methods side by side: decay exponent, cost and failures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .fit import fit_decay, with_optional_keys
from .schema import SUCCESS, check_columns

COMPARE_KEYS = ("problem", "problem_id", "backend", "device", "solver", "sensitivity", "rtol", "atol", "dt", "max_steps")
"""One comparison row per group of gradient rows sharing these columns."""

COMPARE_COLUMNS = (
    *COMPARE_KEYS,
    "exponent",
    "exponent_se",
    "exponent_param",
    "exact_exponent",
    "theory_exponent",
    "theory_n_step_exponent",
    "median_wall_time_s",
    "median_compile_time_s",
    "median_n_steps",
    "median_n_f",
    "n_failures",
    "n_far_from_exact",
    "n_values",
)
"""Columns of :func:`compare`'s frame.

* ``exponent`` (with ``exponent_se``): the steepest fitted decay exponent over the parameter
  entries, i.e. the most negative one; ``exponent_param`` names that entry (NaN when no entry
  could be fitted) and
  ``exact_exponent``, ``theory_exponent``, ``theory_n_step_exponent`` are the fit's columns
  for it (see :data:`~pystiffsens.study.fit.FIT_COLUMNS`).
* ``median_wall_time_s``, ``median_n_steps``, ``median_n_f``: medians over the stiffness values
  (every value counted once, failures included). ``median_wall_time_s`` is the cost: each
  value's share of the compiled batch's run time (``wall_time_s``), compilation excluded on
  the JAX backend (on Julia's it holds Julia's own compilation, which cannot be separated).
* ``median_compile_time_s``: the median of ``compile_time_s`` over the stiffness values, i.e.
  the time to trace and compile the batch (the batches', when the values were computed in
  several, e.g. by a resumed sweep); NaN for the Julia backend. It is never added to the cost.
* ``n_failures``: stiffness values whose status is not ``Success``; ``n_far_from_exact``: rows
  (stiffness value and parameter entry) flagged ``far_from_exact`` (0 where the frame has no such
  column); ``n_values``: all stiffness values.
"""


def compare(frame: pd.DataFrame, fits: pd.DataFrame | None = None, *, solvers=()) -> pd.DataFrame:
    """Tabulate every (solver, sensitivity) pair of a sweep next to each other.

    Parameters
    ----------
    frame : a gradient frame from :func:`~pystiffsens.study.sweep`.
    fits : its :func:`~pystiffsens.study.fit_decay` frame (computed when omitted).
    solvers : unregistered methods of the sweep, for the fits computed here (see
        :func:`~pystiffsens.study.fit_decay`).

    Returns
    -------
    One row per (problem, backend, device, solver, sensitivity, tolerances, dt), in the order
    they first appear in ``frame``, columns :data:`COMPARE_COLUMNS`.
    """
    frame = with_optional_keys(frame)
    check_columns(frame, (*COMPARE_KEYS, "stiffness", "status", "wall_time_s", "compile_time_s", "n_steps", "n_f"))
    fits = fit_decay(frame, solvers=solvers) if fits is None else with_optional_keys(fits)
    flagged = frame["far_from_exact"].astype(bool) if "far_from_exact" in frame.columns else False
    n_far = (
        frame.assign(flagged=flagged)
        .groupby(list(COMPARE_KEYS), sort=False, dropna=False)["flagged"].sum()
        .rename("n_far_from_exact").reset_index()
    )
    per_value = frame.drop_duplicates(subset=[*COMPARE_KEYS, "stiffness"])
    cost = (
        per_value.assign(failed=per_value["status"] != SUCCESS)
        .groupby(list(COMPARE_KEYS), sort=False, dropna=False)
        .agg(
            median_wall_time_s=("wall_time_s", "median"),
            median_compile_time_s=("compile_time_s", "median"),
            median_n_steps=("n_steps", "median"),
            median_n_f=("n_f", "median"),
            n_failures=("failed", "sum"),
            n_values=("stiffness", "size"),
        )
        .reset_index()
    )
    steepest = (
        fits.groupby(list(COMPARE_KEYS), sort=False, dropna=False)
        .apply(_steepest, include_groups=False)
        .reset_index()
    )
    table = cost.merge(steepest, on=list(COMPARE_KEYS), how="left").merge(n_far, on=list(COMPARE_KEYS), how="left")
    return table[list(COMPARE_COLUMNS)]


_FROM_FIT = ("exponent", "exponent_se", "param", "exact_exponent", "theory_exponent", "theory_n_step_exponent")


def _steepest(fits: pd.DataFrame) -> pd.Series:
    """The fit row with the most negative exponent (NaN entries when none was fitted)."""
    fitted = fits[np.isfinite(fits["exponent"])]
    if fitted.empty:
        row = pd.Series({column: np.nan for column in _FROM_FIT})
    else:
        row = fitted.loc[fitted["exponent"].idxmin(), list(_FROM_FIT)]
    return row.rename({"param": "exponent_param"})
