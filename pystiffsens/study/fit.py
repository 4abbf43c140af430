"""Power-law decay exponents of gradients: ``|grad| ~ C * stiffness**p`` fitted in log-log.

Each fit is an ordinary least-squares regression (statsmodels) of ``log10 |grad|`` on
``log10 stiffness``; the slope is the exponent ``p`` and the intercept is ``log10 C``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import statsmodels.api as sm

from ..solvers import CATALOG as SOLVER_CATALOG
from ..solvers import get as get_solver
from .schema import SUCCESS, check_columns

FIT_KEYS = ("problem", "problem_id", "backend", "device", "solver", "sensitivity", "rtol", "atol", "dt", "max_steps", "param")
"""One fit per group of rows sharing these columns: a batch key and a parameter entry."""

OPTIONAL_KEYS = ("problem_id", "max_steps")
"""Keys a frame not made by :func:`~pystiffsens.study.sweep` may lack (the ResNet study's);
they are NaN in the fits of such a frame."""

MIN_POINTS = 3
"""Fewest distinct stiffness values a fit needs (two points leave no residual to estimate the
standard error from); groups with fewer get NaN fit columns."""

CONFIDENCE = 0.95

FIT_COLUMNS = (
    *FIT_KEYS,
    "exponent",
    "exponent_se",
    "exponent_ci_lower",
    "exponent_ci_upper",
    "intercept",
    "r2",
    "n_points",
    "n_failed",
    "n_zero",
    "stiffness_min",
    "stiffness_max",
    "exact_exponent",
    "exact_r2",
    "exact_n_points",
    "theory_exponent",
    "theory_n_step_exponent",
)
"""Columns of :func:`fit_decay`'s frame.

* ``exponent`` with ``exponent_se`` and the 95% interval ``exponent_ci_lower/upper``;
  ``intercept`` is log10 of the prefactor; ``r2`` the coefficient of determination (NaN
  when log10 |grad| is constant).
* ``n_points``: rows used; ``n_failed``: rows left out for a non-``Success`` status or a
  non-finite gradient; ``n_zero``: rows left out for an exactly zero gradient (log undefined).
* ``stiffness_min/max``: the stiffness range of the rows used.
* ``exact_exponent``, ``exact_r2``, ``exact_n_points``: the same fit on ``exact_grad`` over the
  same stiffness range (NaN where the problem has no closed form).
* ``theory_exponent``: the decay exponent of ``|R'(z)|`` of the solver's stability function
  (:func:`theory_exponent`), NaN where it gives none (FBDF, solvers not in ``pss.solvers``).
* ``theory_n_step_exponent``: for fixed-step rows whose successful solves all took the same
  number of steps ``n``, :func:`pystiffsens.theory.n_step_decay_exponent` — the exponent of
  ``|dy_n/dlam|`` after ``n`` steps on Dahlquist's ``y' = -lam*y``, which is what a fixed-step
  sweep of the ``dahlquist`` problem measures (on other problems it is a reference only);
  NaN for adaptive rows.
"""


def loglog_fit(stiffness, magnitude) -> dict:
    """Fit ``log10 magnitude = intercept + exponent * log10 stiffness`` by OLS.

    Returns the fit columns (``exponent`` ... ``stiffness_max``, without the counts of
    left-out rows); every value is NaN when fewer than :data:`MIN_POINTS` distinct
    stiffness values are given.
    """
    x = np.log10(np.asarray(stiffness, dtype=np.float64))
    y = np.log10(np.asarray(magnitude, dtype=np.float64))
    result = {
        "exponent": np.nan,
        "exponent_se": np.nan,
        "exponent_ci_lower": np.nan,
        "exponent_ci_upper": np.nan,
        "intercept": np.nan,
        "r2": np.nan,
        "n_points": int(x.size),
        "stiffness_min": float(10 ** x.min()) if x.size else np.nan,
        "stiffness_max": float(10 ** x.max()) if x.size else np.nan,
    }
    if np.unique(x).size < MIN_POINTS:
        return result
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    lower, upper = ols.conf_int(alpha=1.0 - CONFIDENCE)[1]
    result.update(
        exponent=float(ols.params[1]),
        exponent_se=float(ols.bse[1]),
        exponent_ci_lower=float(lower),
        exponent_ci_upper=float(upper),
        intercept=float(ols.params[0]),
        # R^2 is undefined when log|grad| does not vary (e.g. an exponent of exactly 0).
        r2=float(ols.rsquared) if ols.centered_tss > 0 else np.nan,
    )
    return result


def theory_exponent(solver, n_steps: int | None = None) -> float:
    """The theory's decay exponent for ``solver`` (a name, a solver object or a tableau), or NaN where it gives none.

    Without ``n_steps``: the exponent of ``|R'(z)|`` (one step). With ``n_steps``: the exponent
    of ``|dy_n/dz|`` after that many fixed steps on ``y' = -lam*y``. The stability function
    is the method's own (``solver.stability()``); NaN for a method no single one describes
    (variable-order FBDF) and for a name ``pss.solvers`` does not know (pass the method itself,
    or give it to :func:`fit_decay` as ``solvers=``, to have the theory of a method of your own).
    """
    if isinstance(solver, str):
        if solver not in SOLVER_CATALOG:
            return np.nan
    try:
        stability = get_solver(solver).stability()
    except ValueError:
        return np.nan
    return float(stability.decay_exponent if n_steps is None else stability.n_step_decay_exponent(int(n_steps)))


def methods_by_name(given) -> dict:
    """Frame name -> solver object for the methods in ``given`` (names, solver objects, tableaux).

    A frame names each method by ``solver.name``; a method that is not registered in
    ``pss.solvers`` (a tableau of your own) is known to the fits only through this map.
    """
    methods = {}
    for method in given:
        try:
            solver = get_solver(method)
        except ValueError as error:
            raise ValueError(
                f"solvers= holds {method!r}, which is not a method: {error} Give the solver objects or "
                "tableaux that were swept, e.g. fit_decay(frame, solvers=[my_tableau])."
            ) from None
        methods[solver.name] = solver
    return methods


def _fixed_step_count(group: pd.DataFrame, dt: float) -> int | None:
    """The number of steps of a fixed-step group (every successful solve takes the same), else None."""
    counts = group.loc[group["status"] == SUCCESS, "n_steps"].unique()
    return int(counts[0]) if np.isfinite(dt) and counts.size == 1 and counts[0] > 0 else None


def with_optional_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every :data:`OPTIONAL_KEYS` column it lacks added as NaN."""
    absent = {column: np.nan for column in OPTIONAL_KEYS if column not in frame.columns}
    return frame.assign(**absent) if absent else frame


def check_distinct(frame: pd.DataFrame, keys) -> None:
    """``ValueError`` if two rows share ``keys`` and the stiffness value (they would count twice)."""
    repeated = frame.duplicated(subset=[*keys, "stiffness"], keep=False)
    if repeated.any():
        row = frame[repeated].iloc[0]
        raise ValueError(
            f"frame has {int(repeated.sum())} rows that repeat a stiffness value of one group (first: solver="
            f"{row['solver']!r}, sensitivity={row['sensitivity']!r}, param={row['param']!r}, stiffness={row['stiffness']!r}); "
            "each stiffness value must appear once per group, or the fit counts it twice. Drop the copies, "
            "e.g. frame.drop_duplicates(subset=[*pss.study.schema.IDENTITY_COLUMNS]), or read the frame with "
            "pss.study.read_gradients, which removes them."
        )


def fit_decay(frame: pd.DataFrame, *, min_stiffness=None, max_stiffness=None, solvers=()) -> pd.DataFrame:
    """Fit the decay exponent of ``|grad|`` in stiffness for every solver, sensitivity and parameter.

    Parameters
    ----------
    frame : a gradient frame from :func:`~pystiffsens.study.sweep`.
    min_stiffness, max_stiffness : fit only rows with stiffness in this closed range
        (default: all rows).
    solvers : methods that are not registered in ``pss.solvers`` (solver objects or
        tableaux, as passed to the sweep), so that their rows get ``theory_exponent``;
        registered methods are found by name.

    Returns
    -------
    One row per group of :data:`FIT_KEYS` (in practice: problem, backend, solver, sensitivity,
    parameter entry), columns :data:`FIT_COLUMNS`. Rows with a failed status or a zero
    gradient are left out of the fit and counted in ``n_failed`` / ``n_zero``.
    """
    frame = with_optional_keys(frame)
    check_columns(frame, (*FIT_KEYS, "stiffness", "grad", "exact_grad", "status", "n_steps"))
    check_distinct(frame, FIT_KEYS)
    low = -np.inf if min_stiffness is None else float(min_stiffness)
    high = np.inf if max_stiffness is None else float(max_stiffness)
    if not low <= high:
        raise ValueError(
            f"min_stiffness={min_stiffness!r} exceeds max_stiffness={max_stiffness!r}; "
            "give a range with min_stiffness <= max_stiffness."
        )
    selected = frame[(frame["stiffness"] >= low) & (frame["stiffness"] <= high)]
    methods = methods_by_name(solvers)
    theory = functools.cache(lambda name, n_steps=None: theory_exponent(methods.get(name, name), n_steps))
    rows = []
    for key, group in selected.groupby(list(FIT_KEYS), sort=False, dropna=False):
        grad = group["grad"].to_numpy(dtype=np.float64)
        failed = (group["status"] != SUCCESS).to_numpy() | ~np.isfinite(grad)
        zero = ~failed & (grad == 0.0)
        used = ~failed & ~zero
        fit = loglog_fit(group["stiffness"].to_numpy()[used], np.abs(grad[used]))
        exact = group["exact_grad"].to_numpy(dtype=np.float64)
        has_exact = np.isfinite(exact) & (exact != 0.0)
        exact_fit = loglog_fit(group["stiffness"].to_numpy()[has_exact], np.abs(exact[has_exact]))
        solver, dt = key[FIT_KEYS.index("solver")], key[FIT_KEYS.index("dt")]
        n_steps = _fixed_step_count(group, dt)
        rows.append(
            {
                **dict(zip(FIT_KEYS, key)),
                **fit,
                "n_failed": int(failed.sum()),
                "n_zero": int(zero.sum()),
                "exact_exponent": exact_fit["exponent"],
                "exact_r2": exact_fit["r2"],
                "exact_n_points": exact_fit["n_points"],
                "theory_exponent": theory(solver),
                "theory_n_step_exponent": np.nan if n_steps is None else theory(solver, n_steps),
            }
        )
    return pd.DataFrame(rows, columns=list(FIT_COLUMNS))


@dataclasses.dataclass(frozen=True)
class EntryRanking:
    """The parameter entries of one problem in the order a report shows them.

    Attributes
    ----------
    shown_order : every entry with a non-zero gradient somewhere (or none computed), the
        stiffness knob's entries first, then by the largest ``|grad|`` of any successful row
        (descending), ties broken by the steepest fitted exponent over the solvers.
    knob : the entries of ``shown_order`` the stiffness knob sets.
    zero : entries whose gradient is exactly zero in every successful row (nothing to plot or
        fit); a report leaves them out and says so. A knob entry is never put here.
    """

    shown_order: tuple[str, ...]
    knob: tuple[str, ...]
    zero: tuple[str, ...]

    @property
    def n_entries(self) -> int:
        return len(self.shown_order) + len(self.zero)


def rank_entries(frame: pd.DataFrame, fits: pd.DataFrame, knob=()) -> EntryRanking:
    """Rank the parameter entries of ``frame`` (the rows of one problem) for a report.

    ``fits`` are :func:`fit_decay`'s rows (of any problems; only the entries of ``frame`` are
    used) and ``knob`` names the entries the stiffness knob sets (those absent from ``frame``
    are ignored). See :class:`EntryRanking` for the order.
    """
    entries = list(dict.fromkeys(frame["param"]))
    ok = frame[(frame["status"] == SUCCESS) & np.isfinite(frame["grad"].to_numpy(dtype=np.float64))]
    largest = ok.groupby("param", sort=False)["abs_grad"].max()
    fitted = fits[fits["param"].isin(entries) & np.isfinite(fits["exponent"].to_numpy(dtype=np.float64))]
    steepest = fitted.groupby("param", sort=False)["exponent"].min()
    knob_set = set(knob)
    zero = [e for e in entries if e not in knob_set and e in largest.index and largest[e] == 0.0]

    def order(entry: str) -> tuple[float, float]:
        size = largest.get(entry, np.nan)
        return (-size if np.isfinite(size) else np.inf, steepest.get(entry, np.inf))

    ranked = sorted((e for e in entries if e not in zero), key=lambda e: (e not in knob_set, *order(e)))
    return EntryRanking(tuple(ranked), tuple(e for e in ranked if e in knob_set), tuple(zero))
