"""A sweep's report on disk: the CSV tables, the figures and a summary.md that ties them together."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import problems as builtin_problems
from ..problem import Problem
from ..theory import format_exponent
from . import resume
from .compare import compare
from .fit import CONFIDENCE, EntryRanking, fit_decay, rank_entries
from .plots import MAX_PARAMS_PLOTTED, plot_comparison, plot_gradients
from .schema import FAR_FROM_EXACT, GRADIENT_COLUMNS, check_columns

MAX_FIT_ROWS = 30
"""Fit rows per problem listed in summary.md (whole parameter entries, in the order of
:func:`~pystiffsens.study.fit.rank_entries`, at least one entry); fits.csv holds all of them."""

MAX_NAMES_LISTED = 8
"""Groups of left-out entry names spelled out in summary.md before "and N more"."""


def report(
    frame: pd.DataFrame, out_dir, fits: pd.DataFrame | None = None, *, problems=(), solvers=()
) -> dict[str, Path]:
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

    Figures and summary.md show the parameter entries the stiffness knob sets first, then the
    others by their largest gradient and steepest decay, and leave out entries whose gradient
    is zero in every row, saying how many and which (:func:`~pystiffsens.study.fit.rank_entries`).
    The knob is that of the :class:`~pystiffsens.Problem` in ``problems`` with the frame's
    problem name, else that of the built-in problem of that name (``pss.problems``); a custom
    problem not passed in ``problems`` is reported without one. Likewise the theory's exponent of
    a method that is not registered in ``pss.solvers`` (a tableau of your own) comes from
    ``solvers`` (the solver objects or tableaux that were swept).

    Returns the written paths by name (``"gradients"``, ``"fits"``, ``"comparison"``,
    ``"comparison_plot"``, ``"gradients_plot:<problem>"``, ``"summary"``).
    """
    check_columns(frame, GRADIENT_COLUMNS)
    if frame.empty:
        raise ValueError("frame is empty: nothing to report; run pss.sweep first.")
    out = resume.prepare_out_dir(out_dir)
    paths = {"gradients": out / "gradients.csv", "fits": out / "fits.csv", "comparison": out / "comparison.csv"}
    frame = resume.merge_into(paths["gradients"], frame[list(GRADIENT_COLUMNS)])
    fits = fit_decay(frame, solvers=solvers) if fits is None else fits
    comparison = compare(frame, fits)
    fits.to_csv(paths["fits"], index=False)
    comparison.to_csv(paths["comparison"], index=False)
    knobs = _knobs(frame, problems)
    rankings = {}
    for problem in dict.fromkeys(frame["problem"]):
        rows = frame[frame["problem"] == problem]
        rankings[problem] = rank_entries(rows, fits[fits["problem"] == problem], knobs.get(problem, ()))
        path = out / f"gradients_{_file_stem(problem)}.png"
        entries = rankings[problem].shown_order[:MAX_PARAMS_PLOTTED]
        paths[f"gradients_plot:{problem}"] = plot_gradients(frame, fits, problem, path, entries, rankings[problem].knob)
    paths["comparison_plot"] = plot_comparison(comparison, out / "comparison.png")
    paths["summary"] = out / "summary.md"
    paths["summary"].write_text(_summary(frame, fits, comparison, paths, rankings, knobs))
    return paths


def _knobs(frame: pd.DataFrame, problems) -> dict[str, tuple[str, ...]]:
    """Problem name -> the entries its stiffness knob sets, for the problems of ``frame`` whose
    knob is known (given in ``problems`` or built in); entries absent from the frame are dropped."""
    given = {}
    for problem in problems:
        if not isinstance(problem, Problem):
            raise ValueError(
                f"problems= holds {problem!r}; give the pss.Problem objects that were swept, e.g. "
                "report(frame, out_dir, problems=[problem])."
            )
        given[problem.label] = problem
    knobs = {}
    for name in dict.fromkeys(frame["problem"]):
        problem = given.get(name)
        if problem is None and name in builtin_problems.names():
            problem = builtin_problems.get(name)
        if problem is not None:
            present = set(frame.loc[frame["problem"] == name, "param"])
            knobs[name] = tuple(entry for entry in problem.knob_entries() if entry in present)
    return knobs


def coarse_fixed_steps(frame: pd.DataFrame) -> np.ndarray:
    """Rows of fixed-step solves whose step is longer than ``1/stiffness``: where the stiffness
    knob is a rate (``lam`` of dahlquist), their steps cannot follow the fast mode it sets."""
    dt = frame["dt"].to_numpy(dtype=np.float64)
    return np.isfinite(dt) & (dt * frame["stiffness"].to_numpy(dtype=np.float64) > 1.0)


def _summary(frame: pd.DataFrame, fits: pd.DataFrame, comparison: pd.DataFrame, paths: dict,
             rankings: dict[str, EntryRanking], knobs: dict[str, tuple[str, ...]]) -> str:
    lines = [
        "# Gradient decay with stiffness",
        "",
        "Each exponent `p` is the slope of an ordinary least-squares fit of log10 |grad| on "
        f"log10 stiffness (`|grad| ~ C * stiffness^p`), with its standard error and {CONFIDENCE:.0%} interval; "
        "`exact` is the same fit on the closed-form gradient, `theory` the decay exponent of |R'(z)| for the "
        "solver's stability function (n/a where there is none; \"exponential (faster than any power)\" for the "
        "exponential integrators, whose R(z) = e^z decays as the exact flow does) and `theory, n steps` that of |dy_n/dlam| after "
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
        "the cost: the median run time per stiffness value (the batched, compiled run divided by the number of "
        "values; compilation excluded), the time to trace and compile the batch in its own column (n/a on the "
        "Julia backend, whose run time holds Julia's own compilation), the median number of steps, and the failed "
        "stiffness values.",
        "",
        _table(_comparison_rows(comparison)),
        "",
        f"![solvers side by side]({paths['comparison_plot'].name})",
        "",
        "## Fitted exponents",
        "",
    ]
    for problem, problem_fits in fits.groupby("problem", sort=False):
        if problem in rankings:  # fits= given for problems without rows are not reported
            lines += _problem_section(problem, problem_fits, rankings[problem], problem in knobs, paths)
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


def _problem_section(problem: str, fits: pd.DataFrame, ranking: EntryRanking, knob_known: bool, paths: dict) -> list[str]:
    """summary.md's fits and figure of one problem, with what they leave out."""
    shown_entries = _whole_entries(fits, ranking.shown_order, MAX_FIT_ROWS)
    shown = _in_entry_order(fits, shown_entries)
    plotted = ranking.shown_order[:MAX_PARAMS_PLOTTED]
    lines = [f"### {problem}", "", _order_note(problem, ranking, knob_known), ""]
    lines += [_table(_fit_rows(shown)), ""]
    if len(shown_entries) < len(ranking.shown_order) or ranking.zero:
        lines += [_left_out_note(fits, ranking, shown_entries, "table"), ""]
    lines += [f"![{problem}]({paths[f'gradients_plot:{problem}'].name})", ""]
    lines += [
        f"The figure shows {len(plotted)} of {ranking.n_entries} parameter entries, in the order above; dashed "
        "lines are the fitted power laws, dotted the exact gradient."
        + (" " + _left_out_note(fits, ranking, plotted, "figure") if len(plotted) < ranking.n_entries else ""),
        "",
    ]
    return lines


def _order_note(problem: str, ranking: EntryRanking, knob_known: bool) -> str:
    """How the entries of a problem are ordered, naming its stiffness knob."""
    rest = "the largest |grad| of any successful row, ties broken by the steepest fitted exponent"
    if ranking.knob:
        return f"Parameter entries in order: the stiffness knob's ({', '.join(ranking.knob)}) first, then by {rest}."
    if knob_known:
        return f"Parameter entries in order of {rest} (the stiffness knob sets no entry of the frame)."
    return (
        f"Parameter entries in order of {rest}. The stiffness knob of `{problem}` is not known here (not a built-in "
        "problem): pass the problem to `pss.study.report(frame, out_dir, problems=[problem])` to show its entry first."
    )


def _whole_entries(fits: pd.DataFrame, order, max_rows: int) -> tuple[str, ...]:
    """The leading entries of ``order`` whose fit rows together fit in ``max_rows`` (at least one)."""
    counts = fits["param"].value_counts()
    taken: list[str] = []
    total = 0
    for entry in order:
        total += int(counts.get(entry, 0))
        if taken and total > max_rows:
            break
        taken.append(entry)
    return tuple(taken)


def _in_entry_order(fits: pd.DataFrame, entries) -> pd.DataFrame:
    """The fit rows of ``entries``, grouped by entry in that order (fits.csv's order within one)."""
    rank = {entry: i for i, entry in enumerate(entries)}
    chosen = fits[fits["param"].isin(rank)]
    return chosen.iloc[np.argsort(chosen["param"].map(rank).to_numpy(), kind="stable")]


def _left_out_note(fits: pd.DataFrame, ranking: EntryRanking, shown, where: str) -> str:
    """What the table or figure leaves out: zero entries and lower-ranked ones, counted and named."""
    lower = ranking.shown_order[len(shown):]
    parts = []
    if ranking.zero:
        parts.append(f"{len(ranking.zero)} entries whose gradient is zero in every successful row ({_name_groups(ranking.zero)})")
    if lower:
        n_fits = int(fits["param"].isin(lower).sum())
        fits_text = f" with {n_fits} fits" if where == "table" else ""
        parts.append(f"{len(lower)} entries ranked lower{fits_text} ({_name_groups(lower)})")
    return f"Left out of the {where}: " + "; ".join(parts) + ". Every fit is in `fits.csv`, every row in `gradients.csv`."


def _name_groups(names) -> str:
    """Entry names grouped by their parameter: ``W2[...] (16), b1[0], lam_slow``, at most
    :data:`MAX_NAMES_LISTED` groups then a count of the rest."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.split("[")[0], []).append(name)
    texts = [items[0] if len(items) == 1 else f"{base}[...] ({len(items)})" for base, items in groups.items()]
    if len(texts) > MAX_NAMES_LISTED:
        texts = texts[:MAX_NAMES_LISTED] + [f"and {len(texts) - MAX_NAMES_LISTED} more parameters"]
    return ", ".join(texts)


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
        *_coarse_step_note(frame, flagged),
    ]


def _coarse_step_note(frame: pd.DataFrame, flagged: pd.DataFrame) -> list[str]:
    """The explanation for flagged rows whose fixed steps are longer than the fast time scale."""
    coarse = coarse_fixed_steps(flagged)
    if not coarse.any():
        return []
    which = "All of them" if coarse.all() else f"{int(coarse.sum())} of them"
    return [
        f"{which} are fixed-step rows whose step dt is longer than 1/stiffness, the time scale of the fast mode "
        "where the stiffness knob is a rate (as `lam` of dahlquist and prothero_robinson). Such coarse steps do "
        "not resolve the fast mode: their gradient is that of the discrete method (a power law set by its "
        "stability function, see the theory columns; a continuous adjoint discretised by the same steps is "
        "another approximation), not the exact one, which decays exponentially. Losing the fast mode this way "
        "is what fixed-step references at large stiffness show: expected, not a malfunction.",
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
            "entry": comparison["exponent_param"].map(_text),
            "exact": comparison["exact_exponent"].map(_fmt),
            "theory": comparison["theory_exponent"].map(format_exponent),
            "theory, n steps": comparison["theory_n_step_exponent"].map(format_exponent),
            "time per value [s]": comparison["median_wall_time_s"].map(_fmt),
            "compile [s]": comparison["median_compile_time_s"].map(_fmt),
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
            "theory": fits["theory_exponent"].map(format_exponent),
            "theory, n steps": fits["theory_n_step_exponent"].map(format_exponent),
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


def _text(value) -> str:
    """A text cell: ``value`` itself, or n/a for a missing one (NaN in a column of names)."""
    return value if isinstance(value, str) else "n/a"


def _fmt(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3g}"


def _pm(value, se) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.3f}" if not np.isfinite(se) else f"{value:.3f} ± {se:.3f}"


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
