"""The experiment: the same training at several stiffness levels, baseline against remedies.

:func:`run_experiment` trains every variant at every stiffness (one data set per stiffness,
shared by the variants) and concatenates the histories. :func:`gradient_frame` turns the
epoch-0 gradient norms (the fast parameter's and the rest's, at the same initialisation
relative to the data) into the frame :func:`pystiffsens.fit_decay` fits, so that the decay
exponent of each variant's fast-parameter gradient is measured beside the solver's theory
exponent (:func:`pystiffsens.theory.decay_exponent`). :func:`budget_table` says how far each
training got in the fixed number of epochs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import _x64
from . import remedies
from .system import make_dataset
from .training import TrainConfig, train

DEFAULT_STIFFNESS = (1e1, 1e2, 1e3, 1e4, 1e5)
DEFAULT_VARIANTS = tuple(remedies.VARIANTS)
GROUPS = {"fast": "grad_norm_fast", "rest": "grad_norm_rest"}
"""``param`` label in :func:`gradient_frame` -> history column."""


def checkpoint_file(directory, variant: str, stiffness: float) -> Path:
    return Path(directory) / f"{variant}_stiffness_{stiffness:.6g}.pkl"


@_x64.float64
def run_experiment(stiffness=DEFAULT_STIFFNESS, variants=DEFAULT_VARIANTS, config: TrainConfig | None = None, *,
                   checkpoint_dir=None, checkpoint_every: int = 10, progress: bool = False):
    """Train each of ``variants`` at each ``stiffness``; return the concatenated history frame.

    With ``checkpoint_dir`` every run keeps its checkpoint there, and a rerun resumes
    each run where it stopped (finished runs are read back, not retrained).
    """
    import pandas as pd

    config = TrainConfig() if config is None else config
    stiffness = [float(s) for s in stiffness]
    if len(stiffness) == 0 or not all(math.isfinite(s) and s > 0 for s in stiffness):
        raise ValueError(f"stiffness={stiffness!r} must be a non-empty list of positive finite fast rates.")
    chosen = [remedies.get(name) for name in variants]
    if not chosen:
        raise ValueError(f"variants={variants!r} names no variant; valid choices: {', '.join(remedies.VARIANTS)}.")
    histories = []
    for s in stiffness:
        dataset = make_dataset(s, **config.data_kwargs())
        for variant in chosen:
            path = None if checkpoint_dir is None else checkpoint_file(checkpoint_dir, variant.name, s)
            result = train(variant, dataset, config, checkpoint_path=path, checkpoint_every=checkpoint_every,
                           progress=progress)
            histories.append(result.history)
    return pd.concat(histories, ignore_index=True)


def gradient_frame(history, config: TrainConfig, epoch: int = 0):
    """The gradient norms at ``epoch`` as a frame for :func:`pystiffsens.fit_decay`.

    One row per variant, stiffness and group (``param`` ``"fast"`` or ``"rest"``); the
    ``problem`` column is ``node_chain[<variant>]`` so that each variant gets its own fit;
    ``exact_grad`` is NaN (the neural ODE has no closed form).
    """
    import pandas as pd

    at = history[history["epoch"] == epoch]
    rows = []
    for _, row in at.iterrows():
        for param, column in GROUPS.items():
            rows.append({
                "problem": f"node_chain[{row['variant']}]",
                "variant": row["variant"],
                "backend": "jax",
                "device": "cpu",
                "solver": row["solver"],
                "sensitivity": row["sensitivity"],
                "rtol": config.rtol,
                "atol": config.atol,
                "dt": np.nan if config.dt is None else config.dt,
                "param": param,
                "stiffness": row["stiffness"],
                "grad": row[column],
                "abs_grad": abs(row[column]),
                "exact_grad": np.nan,
                "loss": row["loss"],
                "status": row["status"],
                "n_steps": row["n_steps"],
            })
    return pd.DataFrame(rows)


def fit_gradients(frame, *, min_stiffness=None):
    """:func:`pystiffsens.fit_decay` on :func:`gradient_frame`, with a ``variant`` column."""
    from ..study.fit import fit_decay

    fits = fit_decay(frame, min_stiffness=min_stiffness)
    fits.insert(0, "variant", fits["problem"].str.extract(r"\[(.*)\]", expand=False))
    return fits


def budget_table(history):
    """How far each run got: one row per variant and stiffness.

    Columns: ``epochs``, ``loss_initial``, ``loss_final``, ``loss_ratio`` (final over
    initial), ``fast_rate_rel_error_initial``/``_final``, ``failed_epochs`` (epochs with a
    failed solve), ``train_time_s`` (sum of the epochs' wall times).
    """
    import pandas as pd

    rows = []
    for (variant, stiffness), group in history.groupby(["variant", "stiffness"], sort=False):
        group = group.sort_values("epoch")
        first, last = group.iloc[0], group.iloc[-1]
        rows.append({
            "variant": variant,
            "stiffness": stiffness,
            "epochs": int(group["epoch"].max()) + 1,
            "loss_initial": first["loss"],
            "loss_final": last["loss"],
            "loss_ratio": last["loss"] / first["loss"],
            "fast_rate_rel_error_initial": first["fast_rate_rel_error"],
            "fast_rate_rel_error_final": last["fast_rate_rel_error"],
            "failed_epochs": int((group["status"] != "Success").sum()),
            "train_time_s": float(group["wall_time_s"].sum()),
        })
    return pd.DataFrame(rows)
