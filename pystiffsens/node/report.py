"""CSV files, plots and ``summary.md`` of a stiff neural ODE experiment.

Every number in the summary is computed here from the frames of the run being reported.
"""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

import numpy as np

from ..theory.asymptotics import format_exponent
from .experiment import budget_table, fit_gradients, gradient_frame

FILES = ("history.csv", "gradients.csv", "fits.csv", "budget.csv", "loss_curves.png", "grad_vs_stiffness.png",
         "summary.md")


def _baseline(fast):
    """The baseline's fit row among the fast-parameter fits (the first row when there is no baseline)."""
    rows = fast[fast["variant"] == "baseline"]
    return (rows if len(rows) else fast).iloc[0]


def _plot_loss_curves(history, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: the user's backend and figures are left alone

    variants = list(dict.fromkeys(history["variant"]))
    fig = Figure(figsize=(4 * len(variants), 6.4))
    axes = fig.subplots(2, len(variants), sharey="row", squeeze=False)
    for column, variant in enumerate(variants):
        runs = history[history["variant"] == variant]
        for stiffness, run in runs.groupby("stiffness"):
            run = run.sort_values("epoch")
            axes[0][column].semilogy(run["epoch"], run["loss"] / run["loss"].iloc[0], label=f"lam = {stiffness:g}")
            axes[1][column].semilogy(run["epoch"], run["fast_rate_rel_error"], label=f"lam = {stiffness:g}")
        axes[0][column].set_title(variant)
        axes[1][column].set_xlabel("epoch")
        for row in (0, 1):
            axes[row][column].grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("loss / initial loss")
    axes[1][0].set_ylabel("|lam / lam_data - 1|")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _plot_gradients(frame, fits, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: the user's backend and figures are left alone

    fast = frame[frame["param"] == "fast"]
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for variant, rows in fast.groupby("variant", sort=False):
        rows = rows.sort_values("stiffness")
        fit = fits[(fits["variant"] == variant) & (fits["param"] == "fast")].iloc[0]
        (line,) = ax.loglog(rows["stiffness"], rows["abs_grad"], "o", label=f"{variant}: slope {fit['exponent']:.2f}")
        if np.isfinite(fit["exponent"]):
            s = np.geomspace(fit["stiffness_min"], fit["stiffness_max"], 20)
            ax.loglog(s, 10 ** fit["intercept"] * s ** fit["exponent"], "-", color=line.get_color(), alpha=0.6)
    baseline = _baseline(fits[fits["param"] == "fast"])
    theory = baseline["theory_exponent"]
    if np.isfinite(theory) and np.isfinite(baseline["intercept"]):
        s = np.geomspace(baseline["stiffness_min"], baseline["stiffness_max"], 20)
        anchor = 10 ** (baseline["intercept"] + baseline["exponent"] * np.log10(s[0]))
        ax.loglog(s, anchor * (s / s[0]) ** theory, "k--", label=f"theory slope {theory:g} ({baseline['solver']})")
    ax.set_xlabel("stiffness (fast rate lam of the data)")
    ax.set_ylabel("|gradient of the fast parameter| at epoch 0")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _table(frame, columns, formats) -> str:
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            style = formats.get(column, "{}")
            cells.append(style(value) if callable(style) else style.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _summary(history, fits, budget, config, command: str | None) -> str:
    fast = fits[fits["param"] == "fast"]
    baseline = _baseline(fast)
    biggest = budget["stiffness"].max()
    top = budget[budget["stiffness"] == biggest]
    epoch0 = history[history["epoch"] == 0]
    base0 = epoch0[epoch0["variant"] == baseline["variant"]].set_index("stiffness")["grad_norm_fast"]
    lines = [
        "# Training a stiff neural ODE: the fast-rate gradient against stiffness",
        "",
        f"Run: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
        f"({platform.system()}, Python {platform.python_version()})" + (f"; command `{command}`." if command else "."),
        "",
        f"Model: the chain A -> B -> C with known slow rate, trainable fast rate lam and a tanh MLP "
        f"(hidden {config.hidden}) on the slow states; data: {config.n_trajectories} trajectories, "
        f"{config.n_save} save times on (0, {config.t_end:g}]; lam starts at {config.init_rate_factor:g} x the "
        f"data's. Solver {config.solver}, sensitivity {config.sensitivity}, rtol {config.rtol:g}, atol "
        f"{config.atol:g}" + ("" if config.dt is None else f", dt {config.dt:g}") +
        f"; Adam, learning rate {config.learning_rate:g}, {config.epochs} full-batch epochs.",
        "",
        "## Decay of the fast-parameter gradient (epoch 0)",
        "",
        (f"Fitted exponent p of |grad| ~ stiffness^p (pss.fit_decay, stiffness {baseline['stiffness_min']:g} to "
        f"{baseline['stiffness_max']:g}); the theory exponent of |R'(z)| for {baseline['solver']} is "
        f"{format_exponent(baseline['theory_exponent'], 'g')}."),
        "",
        _table(fits, ["variant", "param", "exponent", "exponent_ci_lower", "exponent_ci_upper", "r2", "n_points",
                      "theory_exponent"],
               {"exponent": "{:.3f}", "exponent_ci_lower": "{:.3f}", "exponent_ci_upper": "{:.3f}", "r2": "{:.4f}",
                "theory_exponent": lambda value: format_exponent(value, "g")}),
        "",
        (f"Baseline fast gradient: {base0.iloc[0]:.3g} at lam = {base0.index[0]:g}, {base0.iloc[-1]:.3g} at "
        f"lam = {base0.index[-1]:g} (a factor {base0.iloc[0] / base0.iloc[-1]:.3g})."),
        "",
    ]
    for _, row in fast[fast["variant"] != baseline["variant"]].iterrows():
        restored = abs(row["exponent"]) < 0.25  # "no decay": the exponent within 0.25 of 0
        verdict = "restores it (no decay)" if restored else (
            "slows the decay" if row["exponent"] > baseline["exponent"] + 0.25 else "does not change the decay")
        lines.append(f"* {row['variant']}: exponent {row['exponent']:.2f} against the baseline's "
                     f"{baseline['exponent']:.2f}: {verdict}.")
    lines += [
        "",
        "## How far training gets in the fixed budget",
        "",
        _table(budget, ["variant", "stiffness", "epochs", "loss_ratio", "fast_rate_rel_error_initial",
                        "fast_rate_rel_error_final", "failed_epochs", "train_time_s"],
               {"stiffness": "{:g}", "loss_ratio": "{:.3g}", "fast_rate_rel_error_initial": "{:.3g}",
                "fast_rate_rel_error_final": "{:.3g}", "train_time_s": "{:.1f}"}),
        "",
        f"At the largest stiffness ({biggest:g}) the fast rate ends within "
        + ", ".join(f"{r['fast_rate_rel_error_final']:.3g} ({r['variant']})" for _, r in top.iterrows())
        + " of the data's (relative error). Losses are each variant's own (the scaled variants weight the errors "
        "by the states' ranges), so compare loss_ratio, not loss.",
        "",
        "The theory exponent is the solver's, for the unscaled gradient of the rate itself; fit_decay "
        "lists it on every row. The exponents of the rest's (the network's) gradient: "
        + ", ".join(f"{r['exponent']:.3f} ({r['variant']})" for _, r in fits[fits["param"] == "rest"].iterrows())
        + ".",
        "",
        ("Files: history.csv (one row per run and epoch), gradients.csv (epoch-0 norms, fit_decay's frame), "
        "fits.csv, budget.csv, loss_curves.png (loss and fast-rate error per epoch), grad_vs_stiffness.png. "
        "Wall times are from a shared machine; the first run's includes the one compilation of the gradient."),
        "",
    ]
    return "\n".join(lines)


def write_report(history, config, out, *, min_stiffness=None, command: str | None = None) -> dict:
    """Write :data:`FILES` for ``history`` (from :func:`~pystiffsens.node.experiment.run_experiment`) to ``out``.

    ``min_stiffness`` restricts the fits to stiffness at or above it. Returns name -> path.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = gradient_frame(history, config)
    fits = fit_gradients(frame, min_stiffness=min_stiffness)
    budget = budget_table(history)
    paths = {name: out / name for name in FILES}
    history.to_csv(paths["history.csv"], index=False)
    frame.to_csv(paths["gradients.csv"], index=False)
    fits.to_csv(paths["fits.csv"], index=False)
    budget.to_csv(paths["budget.csv"], index=False)
    _plot_loss_curves(history, paths["loss_curves.png"])
    _plot_gradients(frame, fits, paths["grad_vs_stiffness.png"])
    paths["summary.md"].write_text(_summary(history, fits, budget, config, command))
    return paths
