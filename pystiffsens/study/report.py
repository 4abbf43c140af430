"""A sweep's report on disk: the CSV tables, the figures and a summary.md that ties them together."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import resume
from .compare import compare
from .fit import CONFIDENCE, fit_decay
from .plots import MAX_PARAMS_PLOTTED, plot_comparison, plot_gradients
from .schema import FAR_FROM_EXACT, GRADIENT_COLUMNS, check_columns

MAX_FIT_ROWS = 30
"""Fit rows per problem listed in summary.md; fits.csv holds all of them."""



def report(frame: pd.DataFrame, out_dir, fits: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write the report of a sweep into ``out_dir`` (created if needed).

    An output directory holds one cumulative study: ``frame`` is merged into the rows already
    in ``out_dir/gradients.csv`` (under its lock, by identity, see
    :mod:`~pystiffsens.study.resume`; no stored row is dropped), and the report covers all of
    them. In a new directory that is ``frame`` itself.

    Files: ``gradients.csv`` (those rows), ``fits.csv`` (:func:`~pystiffsens.study.fit_decay`,
    computed when ``fits`` is omitted), ``comparison.csv`` (:func:`~pystiffsens.study.compare`),
    ``gradients_<problem>.png`` (|grad| vs stiffness in log-log with the fitted slopes),
    ``comparison.png`` (solvers side by side) and ``summary.md``, which also lists the rows
    flagged ``far_from_exact``. The CSVs read back with ``pandas.read_csv`` to equal frames.

    Returns the written paths by name (``"gradients"``, ``"fits"``, ``"comparison"``,
    ``"comparison_plot"``, ``"gradients_plot:<problem>"``, ``"summary"``).
    """
    check_columns(frame, GRADIENT_COLUMNS)
    if frame.empty:
        raise ValueError("frame is empty: nothing to report; run pss.sweep first.")
    out = resume.prepare_out_dir(out_dir)
    paths = {"gradients": out / "gradients.csv", "fits": out / "fits.csv", "comparison": out / "comparison.csv"}
    frame = resume.merge_into(paths["gradients"], frame[list(GRADIENT_COLUMNS)])
    fits = fit_decay(frame) if fits is None else fits
    comparison = compare(frame, fits)
    fits.to_csv(paths["fits"], index=False)
    comparison.to_csv(paths["comparison"], index=False)
    for problem in dict.fromkeys(frame["problem"]):
        path = out / f"gradients_{_file_stem(problem)}.png"
        paths[f"gradients_plot:{problem}"] = plot_gradients(frame, fits, problem, path)
    paths["comparison_plot"] = plot_comparison(comparison, out / "comparison.png")
    paths["summary"] = out / "summary.md"
    paths["summary"].write_text(_summary(frame, fits, comparison, paths))
    return paths


def _summary(frame: pd.DataFrame, fits: pd.DataFrame, comparison: pd.DataFrame, paths: dict) -> str:
    lines = [
        "# Gradient decay with stiffness",
        "",
        "Each exponent `p` is the slope of an ordinary least-squares fit of log10 |grad| on "
        f"log10 stiffness (`|grad| ~ C * stiffness^p`), with its standard error and {CONFIDENCE:.0%} interval; "
        "`exact` is the same fit on the closed-form gradient, `theory` the decay exponent of |R'(z)| for the "
        "solver's stability function (n/a where there is none) and `theory, n steps` that of |dy_n/dlam| after "
        "the n fixed steps the solver took, on Dahlquist's y' = -lam*y (fixed-step rows only; on other problems "
        "a reference). Failed solves and zero gradients are left out "
        "of the fits and counted. The exact fit uses only the stiffness values where the closed-form gradient "
        "is non-zero in float64: a gradient that decays exponentially (exp(-lam) on Dahlquist) shows up as a very "
        "steep exponent from few points (`exact_n_points`, `exact_r2` in fits.csv).",
        "",
        "## Sweeps",
        "",
        _table(_settings(frame)),
        "",
        "## Solvers side by side",
        "",
        "Per solver and sensitivity: the steepest fitted exponent over the parameter entries (and which entry), "
        "the median wall time per stiffness value (the batched, compiled run divided by the number of values), "
        "the median number of steps, and the failed stiffness values.",
        "",
        _table(_comparison_rows(comparison)),
        "",
        f"![solvers side by side]({paths['comparison_plot'].name})",
        "",
        "## Fitted exponents",
        "",
    ]
    for problem, problem_fits in fits.groupby("problem", sort=False):
        shown = problem_fits.head(MAX_FIT_ROWS)
        lines += [f"### {problem}", "", _table(_fit_rows(shown)), ""]
        if len(problem_fits) > len(shown):
            lines += [f"First {len(shown)} of {len(problem_fits)} fits; all are in `fits.csv`.", ""]
        n_params = frame.loc[frame["problem"] == problem, "param"].nunique()
        plotted = min(n_params, MAX_PARAMS_PLOTTED)
        lines += [
            f"![{problem}]({paths[f'gradients_plot:{problem}'].name})",
            "",
            f"The figure shows {plotted} of {n_params} parameter entries; dashed lines are the fitted power laws, "
            "dotted the exact gradient.",
            "",
        ]
    lines += _flagged_section(frame)
    lines += [
        "## Files",
        "",
        "- `gradients.csv`: one row per solver, sensitivity, stiffness value and parameter entry (every sweep "
        "written to this directory; also the resume checkpoint).",
        "- `fits.csv`: one fitted exponent per problem, solver, sensitivity and parameter entry.",
        "- `comparison.csv`: the side-by-side table above.",
        "- `gradients.csv.lock`: the lock that serialises writes to gradients.csv (empty).",
        "",
    ]
    return "\n".join(lines)


def _flagged_section(frame: pd.DataFrame) -> list[str]:
    """summary.md's list, per sweep batch, of the rows whose gradient is far from the closed-form one."""
    flagged = frame[frame["far_from_exact"].astype(bool)]
    lines = ["## Gradients far from the exact ones", ""]
    if flagged.empty:
        return lines + [
            f"No row has rel_error_exact > {FAR_FROM_EXACT:g} (rows without a closed form are not checked).", ""
        ]
    rows = []
    keys = ["problem", "solver", "sensitivity", "rtol", "atol", "dt"]
    for key, group in flagged.groupby(keys, sort=False, dropna=False):
        worst = group.loc[group["rel_error_exact"].idxmax()]
        rows.append(
            {
                "problem": key[0],
                "solver": key[1],
                "sensitivity": key[2],
                "rtol, atol": f"{_fmt(key[3])}, {_fmt(key[4])}",
                "dt": "adaptive" if np.isnan(key[5]) else _fmt(key[5]),
                "flagged rows": len(group),
                "worst: entry": worst["param"],
                "stiffness": _fmt(worst["stiffness"]),
                "grad": _fmt(worst["grad"]),
                "exact": _fmt(worst["exact_grad"]),
                "rel_error_exact": _fmt(worst["rel_error_exact"]),
                "status": worst["status"],
            }
        )
    table = pd.DataFrame(rows).sort_values("rel_error_exact", key=lambda c: -pd.to_numeric(c, errors="coerce"))
    return lines + [
        f"**{len(flagged)} of {len(frame)} rows** have `rel_error_exact` > {FAR_FROM_EXACT:g}: the error of the "
        "gradient against the closed-form one, relative to the exact gradient's size at that stiffness (normwise "
        "over the parameter entries, floored at atol), is larger than that size. Each line below is one solver "
        "and sensitivity with its worst row; every flagged row has `far_from_exact` True in gradients.csv. The "
        "status is the solver's own: a solve may succeed while its gradient has no correct digit (coarse fixed "
        "steps on a fast mode, or a sensitivity method that fails on the problem).",
        "",
        _table(table),
        "",
    ]


def _settings(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for problem, part in frame.groupby("problem", sort=False):
        rows.append(
            {
                "problem": problem,
                "stiffness": f"{_fmt(part['stiffness'].min())} to {_fmt(part['stiffness'].max())} "
                f"({part['stiffness'].nunique()} values)",
                "solvers": ", ".join(dict.fromkeys(part["solver"])),
                "sensitivities": ", ".join(dict.fromkeys(part["sensitivity"])),
                "backend / device": ", ".join(dict.fromkeys(part["backend"] + " / " + part["device"])),
                "rtol, atol": ", ".join(dict.fromkeys(_fmt(r) + ", " + _fmt(a) for r, a in zip(part["rtol"], part["atol"]))),
                "dt": ", ".join(dict.fromkeys("adaptive" if np.isnan(d) else _fmt(d) for d in part["dt"])),
            }
        )
    return pd.DataFrame(rows)


def _comparison_rows(comparison: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "problem": comparison["problem"],
            "solver": comparison["solver"],
            "sensitivity": comparison["sensitivity"],
            "p": [_pm(p, se) for p, se in zip(comparison["exponent"], comparison["exponent_se"])],
            "entry": comparison["exponent_param"].fillna("n/a"),
            "exact": comparison["exact_exponent"].map(_fmt),
            "theory": comparison["theory_exponent"].map(_fmt),
            "theory, n steps": comparison["theory_n_step_exponent"].map(_fmt),
            "median time [s]": comparison["median_wall_time_s"].map(_fmt),
            "median steps": comparison["median_n_steps"].map(_fmt),
            "failed": [f"{int(f)}/{int(n)}" for f, n in zip(comparison["n_failures"], comparison["n_values"])],
        }
    )


def _fit_rows(fits: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entry": fits["param"],
            "solver": fits["solver"],
            "sensitivity": fits["sensitivity"],
            "p": [_pm(p, se) for p, se in zip(fits["exponent"], fits["exponent_se"])],
            f"{CONFIDENCE:.0%} interval": [
                f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(fits["exponent_ci_lower"], fits["exponent_ci_upper"])
            ],
            "r2": fits["r2"].map(_fmt),
            "exact": fits["exact_exponent"].map(_fmt),
            "theory": fits["theory_exponent"].map(_fmt),
            "theory, n steps": fits["theory_n_step_exponent"].map(_fmt),
            "points": fits["n_points"],
            "failed": fits["n_failed"],
            "zero": fits["n_zero"],
        }
    )


def _table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub-flavoured Markdown table."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _fmt(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3g}"


def _pm(value, se) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.3f}" if not np.isfinite(se) else f"{value:.3f} ± {se:.3f}"


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
