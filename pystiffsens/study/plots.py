"""Figures of a sweep: |grad| against stiffness in log-log, and the solvers side by side.

Drawn on :class:`matplotlib.figure.Figure` objects, without pyplot: writing a report leaves
the user's matplotlib backend and pyplot state as they were (a notebook keeps its inline
figures)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .fit import rank_entries
from .schema import SUCCESS

MAX_PARAMS_PLOTTED = 6
"""Panels per gradient figure: the stiffness knob's entry first, then the entries with the
largest gradients (:func:`~pystiffsens.study.fit.rank_entries`)."""

LINE_KEYS = ("backend", "device", "solver", "sensitivity", "rtol", "atol", "dt")
"""Rows sharing these columns (within one problem and parameter) form one line."""

_MARKERS = ("o", "s", "^", "v", "D", "P", "X")
_SENSITIVITY_LINES = ("-", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 1)))


def plot_gradients(frame: pd.DataFrame, fits: pd.DataFrame, problem: str, path, entries=None, knob=()) -> Path:
    """|grad| vs stiffness for ``problem``: a panel per parameter entry, a line per solver and
    sensitivity, the fitted power law dashed over its range and the exact gradient dotted.

    ``entries`` are the parameter entries to plot, in order (default: the first
    :data:`MAX_PARAMS_PLOTTED` of :func:`~pystiffsens.study.fit.rank_entries`); the panels of
    the ``knob`` entries (those the stiffness knob sets) say so in their titles. Each solver has
    its own colour and marker and each sensitivity its own line style; markers shrink from the
    first solver to the last, so lines that coincide (ImplicitEuler and BDF2 take the same
    first step) stay visible one inside the other, and the later one's legend entry names the
    line it covers.
    """
    rows = frame[frame["problem"] == problem]
    varying = [k for k in LINE_KEYS if k not in ("solver", "sensitivity") and rows[k].nunique(dropna=False) > 1]
    rows = rows.assign(line=_line_labels(rows, varying))
    problem_fits = fits[fits["problem"] == problem]
    fit_of = dict(zip(zip(_line_labels(problem_fits, varying), problem_fits["param"]), problem_fits.to_dict("records")))
    if entries is None:
        entries = rank_entries(rows, problem_fits, knob).shown_order[:MAX_PARAMS_PLOTTED]
    params = list(entries) or list(dict.fromkeys(rows["param"]))[:1]
    solvers = list(dict.fromkeys(rows["solver"]))
    sensitivities = list(dict.fromkeys(rows["sensitivity"]))
    covered = _covered_lines(rows, params)
    ncols = min(3, len(params))
    nrows = math.ceil(len(params) / ncols)
    fig = Figure(figsize=(max(4.6 * ncols, 8.0), 3.6 * nrows + 2.0), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, param in zip(axes.flat, params):
        panel = rows[rows["param"] == param]
        for label, line in panel.groupby("line", sort=False):
            style = _line_style(solvers.index(line["solver"].iloc[0]), sensitivities.index(line["sensitivity"].iloc[0]))
            ok = _points(line)
            under = covered.get(label)
            ax.loglog(ok["stiffness"], ok["abs_grad"], label=label + (f"; on {under}" if under else ""), **style)
            fit = fit_of.get((label, param))
            if fit is not None and np.isfinite(fit["exponent"]):
                s = np.geomspace(fit["stiffness_min"], fit["stiffness_max"], 50)
                ax.loglog(s, 10 ** fit["intercept"] * s ** fit["exponent"], linestyle="--", linewidth=0.8, color=style["color"])
        _plot_exact(ax, panel)
        ax.set_title(f"{param} (stiffness knob)" if param in knob else param)
        ax.set_xlabel("stiffness")
        ax.set_ylabel(f"|dL/d{param}|")
        ax.grid(True, which="major", alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.set_visible(False)
    handles, labels = _unique_legend(axes.flat)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(2, len(labels)), fontsize="small")
    n_entries = rows["param"].nunique()
    shown = "" if len(params) == n_entries else f"; {len(params)} of {n_entries} parameter entries"
    fig.suptitle(f"{problem}: |gradient| vs stiffness (dashed: fitted power law{shown})")
    return _save(fig, path)


def _points(line: pd.DataFrame) -> pd.DataFrame:
    """The rows of a line that a log-log plot can show: successful, with a non-zero gradient."""
    return line[(line["status"] == SUCCESS) & (line["abs_grad"] > 0)]


def _covered_lines(rows: pd.DataFrame, params) -> dict[str, str]:
    """Line label -> the earlier line it covers in every panel of ``params``: the same stiffness
    values and gradients equal to 0.1 %, indistinguishable on the log scale."""
    common: dict[str, list[str]] | None = None
    for param in params:
        drawn: dict[str, pd.DataFrame] = {}
        matches: dict[str, list[str]] = {}
        for label, line in rows[rows["param"] == param].groupby("line", sort=False):
            points = _points(line)
            matches[label] = [other for other, earlier in drawn.items() if _same_points(points, earlier)]
            drawn[label] = points
        common = matches if common is None else {
            label: [other for other in earlier if other in matches.get(label, [])] for label, earlier in common.items()
        }
    return {label: earlier[0] for label, earlier in (common or {}).items() if earlier}


def _same_points(line: pd.DataFrame, other: pd.DataFrame) -> bool:
    return bool(len(line)) and np.array_equal(line["stiffness"].to_numpy(), other["stiffness"].to_numpy()) and bool(
        np.allclose(line["abs_grad"].to_numpy(), other["abs_grad"].to_numpy(), rtol=1e-3, atol=0.0)
    )


def _line_style(solver_index: int, sensitivity_index: int) -> dict:
    """Colour and marker by solver, line style and hollow markers by sensitivity; earlier solvers
    get larger markers and wider lines so that a later line drawn on top leaves them visible."""
    color = matplotlib.colormaps["tab10"](solver_index % 10)
    size = max(3.0, 9.0 - 1.2 * solver_index)
    return {
        "color": color,
        "marker": _MARKERS[solver_index % len(_MARKERS)],
        "markersize": size,
        "markerfacecolor": color if sensitivity_index == 0 else "none",
        "linestyle": _SENSITIVITY_LINES[sensitivity_index % len(_SENSITIVITY_LINES)],
        "linewidth": max(0.8, 2.4 - 0.3 * solver_index),
    }


def _plot_exact(ax, panel: pd.DataFrame) -> None:
    """The closed-form gradient of a panel, dotted, without widening the panel's y range."""
    exact = panel.drop_duplicates("stiffness")
    exact = exact[np.isfinite(exact["exact_grad"]) & (exact["exact_grad"] != 0)]
    if len(exact):
        limits = ax.get_ylim() if ax.has_data() else None
        ax.loglog(exact["stiffness"], exact["exact_grad"].abs(), linestyle=":", color="black", label="exact")
        if limits is not None:  # an exact gradient that decays exponentially leaves the panel downwards
            ax.set_ylim(limits)


def plot_comparison(comparison: pd.DataFrame, path) -> Path:
    """Per problem: the fitted exponent (bars, with standard errors; theory as black ticks, an arrow at the
    bottom where it is exponential, faster than any power) and
    the median run time per stiffness value (the compiled run; compilation is never added),
    solvers along x, one bar per sensitivity."""
    problems = list(dict.fromkeys(comparison["problem"]))
    fig = Figure(figsize=(11, 3.8 * len(problems) + 0.6), layout="constrained")
    axes = fig.subplots(len(problems), 2, squeeze=False)
    colors = matplotlib.colormaps["tab10"]
    for (ax_exp, ax_time), problem in zip(axes, problems):
        table = comparison[comparison["problem"] == problem]
        solvers = list(dict.fromkeys(table["solver"]))
        sensitivities = list(dict.fromkeys(table["sensitivity"]))
        width = 0.8 / len(sensitivities)
        for j, sensitivity in enumerate(sensitivities):
            part = table[table["sensitivity"] == sensitivity].drop_duplicates("solver")
            x = np.array([solvers.index(s) for s in part["solver"]]) - 0.4 + width * (j + 0.5)
            ax_exp.bar(x, part["exponent"], width, yerr=part["exponent_se"], color=colors(j % 10), label=sensitivity)
            ax_time.bar(x, part["median_wall_time_s"], width, color=colors(j % 10), label=sensitivity)
        theory = table.drop_duplicates("solver")
        theory = theory[np.isfinite(theory["theory_exponent"])]
        ax_exp.scatter(
            [solvers.index(s) for s in theory["solver"]], theory["theory_exponent"],
            marker="_", s=400, color="black", zorder=3, label="theory",
        )
        faster = table.drop_duplicates("solver")
        faster = faster[np.isneginf(faster["theory_exponent"].to_numpy(dtype=np.float64))]
        if len(faster):  # exponent -inf (R = e^z): an arrow at the bottom of the panel, no finite tick
            ax_exp.scatter([solvers.index(s) for s in faster["solver"]], [0.03] * len(faster),
                           transform=ax_exp.get_xaxis_transform(), marker="v", s=80, color="black", zorder=3,
                           label="theory: exponential (faster than any power)")
        for ax, ylabel in ((ax_exp, "fitted exponent p"), (ax_time, "median run time per value [s]\n(compiled; compilation excluded)")):
            ax.set_xticks(range(len(solvers)), solvers, rotation=30, ha="right")
            ax.set_ylabel(ylabel)
            ax.set_title(problem)
            ax.grid(True, axis="y", alpha=0.3)
        ax_exp.axhline(0.0, color="grey", linewidth=0.8)
        ax_time.set_yscale("log")
        ax_exp.legend(fontsize="small")
    fig.suptitle("Steepest gradient decay |grad| ~ stiffness^p and cost per solver")
    return _save(fig, path)


def _line_labels(table: pd.DataFrame, varying: list[str]) -> list[str]:
    """Legend label of each row: solver / sensitivity, plus the ``varying`` settings."""
    labels = []
    for record in table[list(LINE_KEYS)].to_dict("records"):
        extra = ", ".join(_setting(k, record[k]) for k in varying)
        labels.append(f"{record['solver']} / {record['sensitivity']}" + (f" ({extra})" if extra else ""))
    return labels


def _setting(name: str, value) -> str:
    if name == "dt" and np.isnan(value):
        return "adaptive"
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"


def _unique_legend(axes):
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def _save(fig, path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
