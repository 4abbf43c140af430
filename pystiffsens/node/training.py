"""Training the neural ODE on trajectories of the stiff chain, with a per-epoch history.

One epoch is one full-batch optimiser step: the gradient of the mean loss over all
trajectories, computed by :func:`pystiffsens.make_gradient_fn` (any solver and sensitivity)
vmapped over the trajectories, mapped to the trained parameters of the variant (chain rule
through :meth:`~pystiffsens.node.remedies.Variant.to_model`) and applied by optax's Adam.
The history has one row per epoch, recorded *before* that epoch's update: the loss and the
gradient norms of the fast parameter and of the rest at the parameters the epoch starts
from. A failed solve (any trajectory's status other than ``Success``) gives NaN loss and
gradients; that epoch's update is skipped and the status is recorded.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from .. import _x64, _xla
from ..results import STAT_NAMES
from ..returncode import ReturnCode
from . import checkpoint as _checkpoint
from . import model as _model
from .remedies import Variant
from .system import SLOW_RATE, Dataset

if TYPE_CHECKING:  # pandas is imported only when a run builds its history
    import pandas as pd

HISTORY_COLUMNS = (
    "variant", "stiffness", "solver", "sensitivity", "epoch", "loss", "grad_norm_fast", "grad_norm_rest",
    "fast_rate", "fast_rate_rel_error", "status", "n_failed",
    *STAT_NAMES, *(f"backward_{name}" for name in STAT_NAMES), "wall_time_s",
)
"""Columns of :attr:`TrainResult.history`.

``grad_norm_fast``: ``|dL/dlam|`` (``|dL/dlog lam|`` with log rates); ``grad_norm_rest``: the
Euclidean norm of the gradient over every other trained parameter (the network's).
``fast_rate``: the model's ``lam``; ``fast_rate_rel_error``: ``|lam / lam_data - 1|``.
``status``: ``Success`` or the first failing trajectory's ReturnCode word; ``n_failed``:
failing trajectories. Counters: summed over trajectories (-1 where the sensitivity reports
none, e.g. ``backward_*`` of forward mode). ``wall_time_s``: the epoch's wall time.
"""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Solver, sensitivity, data, model and optimiser settings of one training run.

    ``init_rate_factor``: the model's fast rate starts at this multiple of the data's. ``dt``: a fixed
    step for the fixed-step solvers, ``None`` for adaptive steps.
    """

    solver: str = "Rodas5P"
    sensitivity: str = "ForwardDiffSensitivity"
    rtol: float = 1e-6
    atol: float = 1e-9
    dt: float | None = None
    max_steps: int = 10_000
    epochs: int = 100
    learning_rate: float = 0.05
    hidden: int = 8
    n_trajectories: int = 8
    n_save: int = 10
    t_end: float = 2.0
    init_rate_factor: float = 0.3
    seed: int = 0

    def __post_init__(self):
        for name in ("max_steps", "epochs", "hidden", "n_trajectories", "n_save"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{name}={value!r} must be a positive integer.")
        for name in ("rtol", "atol", "learning_rate", "t_end", "init_rate_factor"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a positive finite number.")
        if self.dt is not None and not (math.isfinite(self.dt) and 0 < self.dt <= self.t_end):
            raise ValueError(f"dt={self.dt!r} must be None (adaptive) or a step in (0, t_end={self.t_end}].")

    @classmethod
    def short(cls, **changes) -> TrainConfig:
        """A seconds-long setting for tests: 4 trajectories, 4 epochs (the save times, and so the
        compiled gradient function, are the default's)."""
        return cls(**{"n_trajectories": 4, "epochs": 4, **changes})

    def data_kwargs(self) -> dict:
        return {"n_trajectories": self.n_trajectories, "n_save": self.n_save, "t_end": self.t_end, "seed": self.seed}


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """A finished run: the trained parameters (``raw``, as the variant trains them; ``model``,
    the model's) and the ``history`` frame (:data:`HISTORY_COLUMNS`)."""

    variant: str
    stiffness: float
    raw: dict
    model: dict
    history: pd.DataFrame


_GRADIENT_FNS: dict = {}


def gradient_fn_for(config: TrainConfig, ts):
    """The jitted, trajectory-batched gradient function for ``config`` (built once per setting).

    It depends only on the solver settings and array shapes, not on the stiffness or the
    variant, so one compilation serves a whole experiment.
    """
    key = (config.solver, config.sensitivity, config.rtol, config.atol, config.dt, config.max_steps,
           config.hidden, tuple(np.asarray(ts).tolist()), config.t_end)
    if key not in _GRADIENT_FNS:
        template = _model.init_model(jax.random.PRNGKey(0), fast_rate=1.0, hidden=config.hidden)
        problem = _model.trajectory_problem(template, ts, config.t_end)
        _GRADIENT_FNS[key] = _model.batched_gradient_fn(
            problem, config.solver, config.sensitivity, rtol=config.rtol, atol=config.atol, dt=config.dt,
            max_steps=config.max_steps,
        )
    return _GRADIENT_FNS[key]


def fingerprint(variant: Variant, dataset: Dataset, config: TrainConfig) -> dict:
    """What identifies a run, for checkpoints: everything but the number of epochs, so that a
    finished run can be extended by rerunning it with more epochs."""
    settings = {name: value for name, value in dataclasses.asdict(config).items() if name != "epochs"}
    return {"variant": variant.name, "stiffness": dataset.stiffness, **settings}


def initial_raw(variant: Variant, dataset: Dataset, config: TrainConfig) -> dict:
    """The starting parameters, as the variant trains them."""
    model = _model.init_model(
        jax.random.PRNGKey(config.seed), fast_rate=config.init_rate_factor * dataset.stiffness, hidden=config.hidden,
    )
    return variant.to_raw(model)


def _data_entries(variant: Variant, dataset: Dataset, config: TrainConfig) -> dict:
    entries = variant.data_entries(dataset.state_range, config.t_end)
    return {
        "k": jnp.float64(SLOW_RATE),
        "y_init": jnp.asarray(dataset.y0s),
        "target": jnp.asarray(dataset.ys),
        "weight": jnp.asarray(entries["weight"]),
        "out_scale": jnp.asarray(entries["out_scale"]),
    }


def _counter(stats: dict, name: str) -> int:
    return int(np.sum(stats[name])) if name in stats else -1


class _Step:
    """The jitted pieces of an epoch around the (shared, separately jitted) gradient function."""

    def __init__(self, variant: Variant, optimiser):
        import optax

        def update(raw, opt_state, grad_model_batch, statuses):
            model, pullback = jax.vjp(variant.to_model, raw)
            grad_model = {name: jnp.mean(grad_model_batch[name], axis=0) for name in _model.TRAINABLE}
            (grad_raw,) = pullback(grad_model)
            updates, new_state = optimiser.update(grad_raw, opt_state, raw)
            new_raw = optax.apply_updates(raw, updates)
            ok = jnp.all(statuses == ReturnCode.Success)  # a failed epoch leaves parameters and state as they were
            keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
            summary = {**_model.group_norms(grad_raw), "fast_rate": model[_model.FAST]}
            return keep(new_raw, raw), keep(new_state, opt_state), summary

        self.to_model = _xla.jit(variant.to_model)
        self.update = _xla.jit(update)


_STEPS: dict = {}


def _step_for(variant: Variant, learning_rate: float) -> tuple:
    """Adam at ``learning_rate`` and the jitted epoch pieces for ``variant`` (built once)."""
    import optax

    key = (variant, learning_rate)
    if key not in _STEPS:
        optimiser = optax.adam(learning_rate)
        _STEPS[key] = (optimiser, _Step(variant, optimiser))
    return _STEPS[key]


@_x64.float64
def train(variant: Variant, dataset: Dataset, config: TrainConfig, *, checkpoint_path=None,
          checkpoint_every: int = 10, progress: bool = False) -> TrainResult:
    """Train the model of ``variant`` on ``dataset`` for ``config.epochs`` epochs.

    With ``checkpoint_path`` the state is saved every ``checkpoint_every`` epochs and at the
    end, and a run finds its checkpoint there and resumes from it (a run that already has
    ``config.epochs`` epochs returns at once; one with fewer continues). The resumed history
    equals an uninterrupted run's.
    """
    import pandas as pd

    if not (isinstance(checkpoint_every, int) and checkpoint_every >= 1):
        raise ValueError(f"checkpoint_every={checkpoint_every!r} must be a positive integer.")
    batch_grad = gradient_fn_for(config, dataset.ts)
    data = _data_entries(variant, dataset, config)
    optimiser, step = _step_for(variant, config.learning_rate)
    print_every = max(1, config.epochs // 10)
    ident = fingerprint(variant, dataset, config)

    saved = None if checkpoint_path is None else _checkpoint.load(checkpoint_path, ident)
    if saved is None:
        raw = initial_raw(variant, dataset, config)
        opt_state = optimiser.init(raw)
        rows, start = [], 0
    else:
        raw = jax.tree_util.tree_map(jnp.asarray, saved["raw"])
        opt_state = jax.tree_util.tree_map(jnp.asarray, saved["opt_state"])
        rows, start = list(saved["rows"]), saved["epoch"]
        if start > config.epochs:
            raise ValueError(
                f"checkpoint {checkpoint_path} holds {start} epochs, more than epochs={config.epochs}; "
                f"ask for at least {start} epochs or use another output directory."
            )

    for epoch in range(start, config.epochs):
        began = time.perf_counter()
        out = batch_grad({**step.to_model(raw), **data})
        new_raw, new_state, summary = step.update(raw, opt_state, out["grad"], out["status"])
        summary, stats, statuses = jax.device_get((summary, out["stats"], out["status"]))
        failed = statuses != ReturnCode.Success
        rows.append({
            "variant": variant.name,
            "stiffness": dataset.stiffness,
            "solver": config.solver,
            "sensitivity": config.sensitivity,
            "epoch": epoch,
            "loss": float(np.mean(out["loss"])),
            "grad_norm_fast": float(summary["grad_norm_fast"]),
            "grad_norm_rest": float(summary["grad_norm_rest"]),
            "fast_rate": float(summary["fast_rate"]),
            "fast_rate_rel_error": abs(float(summary["fast_rate"]) / dataset.stiffness - 1.0),
            "status": ReturnCode.from_value(statuses[failed][0]).name if failed.any() else ReturnCode.Success.name,
            "n_failed": int(failed.sum()),
            **{name: _counter(stats, name) for name in STAT_NAMES},
            **{f"backward_{name}": _counter(stats, f"backward_{name}") for name in STAT_NAMES},
            "wall_time_s": time.perf_counter() - began,
        })
        raw, opt_state = new_raw, new_state
        done = epoch + 1
        if checkpoint_path is not None and (done % checkpoint_every == 0 or done == config.epochs):
            _checkpoint.save(checkpoint_path, fingerprint=ident, epoch=done, raw=raw, opt_state=opt_state, rows=rows)
        if progress and (done % print_every == 0 or done == config.epochs):
            last = rows[-1]
            print(f"  {variant.name} stiffness {dataset.stiffness:g} epoch {done}/{config.epochs}: "
                  f"loss {last['loss']:.4g}, |grad fast| {last['grad_norm_fast']:.3g}, lam {last['fast_rate']:.4g}",
                  flush=True)

    history = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    return TrainResult(variant=variant.name, stiffness=dataset.stiffness, raw=jax.device_get(raw),
                       model=jax.device_get(variant.to_model(raw)), history=history)
