"""CSV files, plots and a Markdown summary of trained Alpine02 ResNets, beside the deck's numbers."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: the user's backend and figures are left alone

from .model import LAYER_PROXIES

DECK_ALPINE02 = {
    "model": "RES", "epochs": 10_000, "er": 0.00389, "ge": 0.00613, "df": 2.64, "frob": 37.5, "singular": 25.8,
}
"""The deck's table for the unpenalised ResNet on Alpine02 (width 20, depth 10, tanh, 900/100
points, 10k epochs). The deck does not define its columns; read here as: ``er``/``ge``
empirical risk and generalisation error (taken to be MSE), ``frob`` and ``singular`` the
Frobenius norm and the largest singular value of the layer Jacobians summed over layers
(the deck's upper bounds of the spectral radius), ``df`` not identified."""

SUMMARY_COLUMNS = (
    "model", "epochs", "er", "ge", "spectral_radius_gelfand", "frobenius", "singular_max", "singular_ratio",
    "singular_ratio_median", "stiffness_ratio", "stiffness_ratio_median", "train_time_s",
)

COLORS = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]

CLIMATE_NOTE = (
    "The deck's second case (a surrogate of the E3SM land model ELM v2 with FATES, 15 inputs, "
    "10 outputs, 1996/500 points) uses data that is not publicly available; it is not reproduced."
)


def summary_frame(results) -> pd.DataFrame:
    """One row per trained model: the last history row and the training wall time."""
    rows = []
    for result in results:
        final = result.final
        row = {name: final[name] for name in SUMMARY_COLUMNS if name in final.index}
        row["epochs"] = int(final["epoch"])
        row["train_time_s"] = result.train_time_s
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def history_frame(results) -> pd.DataFrame:
    return pd.concat([result.history for result in results], ignore_index=True)


def _plot_errors(history: pd.DataFrame, path: Path) -> None:
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, column, title in zip(axes, ("er", "ge"), ("empirical risk (train MSE)", "generalisation error (test MSE)")):
        for model, frame in history.groupby("model", sort=False):
            ax.plot(frame["epoch"], frame[column], label=model)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _plot_proxies(history: pd.DataFrame, path: Path) -> None:
    cols = 3
    rows = math.ceil(len(LAYER_PROXIES) / cols)
    fig = Figure(figsize=(4 * cols, 3.5 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, proxy in zip(axes.flat, LAYER_PROXIES):
        for color, (model, frame) in zip(COLORS, history.groupby("model", sort=False)):
            ax.plot(frame["epoch"], frame[proxy], color=color, label=f"{model} (mean)")
            if f"{proxy}_median" in frame:
                median = frame[f"{proxy}_median"]
                ax.plot(frame["epoch"], median, color=color, linestyle="--", label=f"{model} (median)")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{proxy} (sum over layers)")
    for ax in list(axes.flat)[len(LAYER_PROXIES):]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value):
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _summary_markdown(summary: pd.DataFrame, config) -> str:
    deck = {
        key.upper() if key in ("er", "ge") else key: value for key, value in DECK_ALPINE02.items() if key != "model"
    }
    side_by_side = pd.DataFrame([{"source": f"deck, {DECK_ALPINE02['model']}", **deck}] + [
        {
            "source": f"pystiffsens, {row.model}",
            "epochs": row.epochs,
            "ER": row.er,
            "GE": row.ge,
            "df": float("nan"),
            "frob": row.frobenius,
            "singular": row.singular_max,
        }
        for row in summary.itertuples(index=False)
    ])
    return "\n".join([
        "# Alpine02 ResNets: stiffness proxies",
        "",
        f"Settings: dim {config.dim}, width {config.width}, depth {config.depth}, horizon T = {config.horizon}, "
        f"tanh, {config.n_train} training / {config.n_test} test points, batches of {config.batch_size}, "
        f"Adam at {config.learning_rate:g} with reduce-on-plateau (factor {config.plateau_factor:g}, "
        f"patience {config.plateau_patience}), {config.epochs} epochs, seed {config.seed}.",
        "",
        "ER and GE are the mean squared errors on the training and test sets. Proxies are per-layer",
        "quantities of the layer Jacobians diag(tanh'(W_n x + b_n)) W_n, summed over layers and",
        "averaged over the training samples (`_median`: the median over samples instead; the ratios",
        "are heavy-tailed because saturated units make some layer Jacobians nearly singular).",
        "",
        "## Beside the deck",
        "",
        "The deck's Alpine02 table has one row (RES after 10k epochs) and does not define its columns;",
        "`frob` and `singular` are read as the Frobenius norm and the largest singular value of the",
        "layer Jacobians, and `df` is left unmatched. Rows with fewer epochs than the deck's are not",
        "comparable in ER and GE.",
        "",
        _markdown_table(side_by_side),
        "",
        "## All proxies",
        "",
        _markdown_table(summary),
        "",
        "## Not reproduced",
        "",
        CLIMATE_NOTE,
        "",
    ])


def write_report(results, out_dir) -> dict[str, Path]:
    """Write ``history.csv``, ``summary.csv``, ``errors.png``, ``proxies.png`` and ``summary.md``
    for the :class:`~pystiffsens.resnet.training.TrainResult` list ``results`` into ``out_dir``.

    All results must share one :class:`~pystiffsens.resnet.training.TrainConfig`. Returns the
    written paths by name.
    """
    results = list(results)
    if not results:
        raise ValueError("results is empty; pass the TrainResult list returned by experiment().")
    configs = {result.config for result in results}
    if len(configs) != 1:
        raise ValueError(f"results were trained with {len(configs)} different configurations; report one at a time.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    history = history_frame(results)
    summary = summary_frame(results)
    paths = {
        "history": out / "history.csv",
        "summary": out / "summary.csv",
        "errors": out / "errors.png",
        "proxies": out / "proxies.png",
        "markdown": out / "summary.md",
    }
    history.to_csv(paths["history"], index=False)
    summary.to_csv(paths["summary"], index=False)
    _plot_errors(history, paths["errors"])
    _plot_proxies(history, paths["proxies"])
    paths["markdown"].write_text(_summary_markdown(summary, configs.pop()))
    return paths
