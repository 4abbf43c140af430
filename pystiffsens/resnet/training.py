"""Training the Alpine02 ResNets RES, RES L2 and RES stiff of the Hudson et al. deck.

Loss (the deck's "quadratic mean of RMSE and penalty") on a mini-batch ``S``:

    sqrt( mean_{i in S} ( |F(x_i) - y_i|^2 + lambda p_i^2 ) ).

The deck writes a sum inside the root but calls it a quadratic mean; the mean is used here,
so that ``lambda = 0`` gives the RMSE and the loss does not depend on the batch size.
The penalty ``p_i`` is

* ``RES``: none;
* ``RES L2`` (``lambda = 1e-5``): the mean of the Frobenius norms of all parameter arrays
  (``W_in``, ``b_in``, each ``W_n`` and ``b_n``, ``W_out``, ``b_out``), the same for every sample;
* ``RES stiff`` (``lambda = 1e-3``): the network's stiffness at sample ``i``,
  ``sum_n rho(J_n(x_{n-1}^(i)))`` with ``rho`` the spectral radius by Gelfand's formula
  (:func:`pystiffsens.stiffness.spectral_radius`).

Optimiser: Adam at ``learning_rate`` followed by ``optax.contrib.reduce_on_plateau``
(factor 0.1, relative threshold 1e-4, as PyTorch's ``ReduceLROnPlateau``) acting once per
epoch on the epoch's mean mini-batch loss (``accumulation_size`` = batches per epoch). The
deck does not state its patience. PyTorch's default of 10 epochs collapses the learning
rate here: measured with seed 0, it falls from 1e-3 to 1e-13 between epochs 280 and 400
and the empirical risk stays at 0.158 for the rest of a 10k-epoch run. The default is
therefore a patience of 100 epochs, with which RES reaches ER 0.0026 / GE 0.0066 after
1500 epochs (measured), the deck's order of magnitude.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pandas as pd
from tqdm.auto import tqdm

from .. import _x64, _xla
from .._validation import choose
from . import model as resnet
from .alpine import make_data

MODELS = {"RES": ("none", 0.0), "RES_L2": ("l2", 1e-5), "RES_stiff": ("stiff", 1e-3)}
"""Model name -> (penalty kind, penalty weight lambda), as in the deck."""

MODEL_ALIASES = {"RES L2": "RES_L2", "RES stiff": "RES_stiff", "RES-L2": "RES_L2", "RES-stiff": "RES_stiff"}

RATIO_PROXIES = ("stiffness_ratio", "singular_ratio")
"""Heavy-tailed proxies (a nearly singular layer Jacobian at one sample dominates the mean),
also reported by their median over samples."""

HISTORY_COLUMNS = (
    "model", "epoch", "loss", "er", "ge", "er_rmse", "ge_rmse", "penalty", "learning_rate",
    *resnet.LAYER_PROXIES, *(f"{name}_median" for name in RATIO_PROXIES), "stiffness_total",
)
"""Columns of :attr:`TrainResult.history`; see :func:`evaluate`."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Architecture, data and optimiser settings; the defaults are the deck's Alpine02 run.

    ``record_every``: epochs between two rows of the history (the proxies need one
    eigenvalue and one SVD per layer and training sample, about a second per row on one
    CPU core at the default sizes). ``seed`` fixes the data, the initial weights and the
    shuffling, identically for every model.
    """

    dim: int = 2
    width: int = 20
    depth: int = 10
    horizon: float = 1.0
    n_train: int = 900
    n_test: int = 100
    batch_size: int = 45
    epochs: int = 10_000
    learning_rate: float = 1e-3
    plateau_factor: float = 0.1
    plateau_patience: int = 100
    record_every: int = 10
    seed: int = 0

    def __post_init__(self):
        integers = ("dim", "width", "depth", "n_train", "n_test", "batch_size", "epochs", "plateau_patience", "record_every")
        for name in integers:
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name}={value!r} must be a positive integer.")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed={self.seed!r} must be an integer.")
        if self.batch_size > self.n_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds n_train={self.n_train}.")
        if self.n_train % self.batch_size:
            raise ValueError(
                f"n_train={self.n_train} is not a multiple of batch_size={self.batch_size}; "
                "every epoch must see every training point once."
            )
        for name in ("horizon", "learning_rate"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a positive finite number.")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor={self.plateau_factor!r} must lie in (0, 1).")

    @classmethod
    def short(cls, **changes) -> TrainConfig:
        """A seconds-long setting for tests and smoke runs: width 8, depth 4, 90 training and
        30 test points, batches of 15, 30 epochs, history every 10."""
        base = dict(width=8, depth=4, n_train=90, n_test=30, batch_size=15, epochs=30, record_every=10)
        return cls(**{**base, **changes})

    @property
    def batches_per_epoch(self) -> int:
        return self.n_train // self.batch_size


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """One trained model: final ``params`` (NumPy), the ``history`` frame (rows every
    ``config.record_every`` epochs, plus epoch 0 and the last), and ``train_time_s``, the wall
    time of the optimisation alone (history rows excluded, JIT compilation included)."""

    model: str
    config: TrainConfig
    penalty: str
    penalty_weight: float
    params: dict
    history: pd.DataFrame
    train_time_s: float

    @property
    def final(self) -> pd.Series:
        return self.history.iloc[-1]


def resolve_model(name: str) -> str:
    return choose("ResNet model", name, MODELS, MODEL_ALIASES)


def _norm(a):
    """Euclidean/Frobenius norm with derivative 0 (not NaN) at ``a = 0``: the biases start there."""
    sq = jnp.sum(a**2)
    return jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)


def penalty_values(kind: str, params, u, horizon: float):
    """Penalty ``p_i`` for each input row of ``u`` (see the module docstring)."""
    n = u.shape[0]
    if kind == "none":
        return jnp.zeros(n)
    if kind == "l2":
        arrays = [params["W_in"], params["b_in"], *params["W"], *params["b"], params["W_out"], params["b_out"]]
        mean_norm = jnp.mean(jnp.stack([_norm(a) for a in arrays]))
        return jnp.full(n, mean_norm)
    radii = resnet.layer_proxies(params, u, horizon, names=("spectral_radius_gelfand",))["spectral_radius_gelfand"]
    return jnp.sum(radii, axis=1)


def objective(params, u, y, kind: str, weight: float, horizon: float):
    """The training loss ``sqrt(mean(|F(u_i) - y_i|^2 + weight * p_i^2))``."""
    sq_err = jnp.sum((resnet.predict(params, u, horizon) - y) ** 2, axis=-1)
    p = penalty_values(kind, params, u, horizon)
    return jnp.sqrt(jnp.mean(sq_err + weight * p**2))


def evaluate(params, data, kind: str, weight: float, horizon: float) -> dict:
    """History quantities of ``params``: ``loss`` (the objective on the whole training set),
    ``er``/``ge`` (empirical risk and generalisation error: MSE on the training and test sets),
    ``er_rmse``/``ge_rmse`` (their roots), ``penalty`` (mean ``p_i`` over the training set),
    each of :data:`~pystiffsens.resnet.model.LAYER_PROXIES` summed over layers and averaged over
    training samples, the median over samples of those sums for :data:`RATIO_PROXIES`
    (``<name>_median``), and ``stiffness_total``, the deck's ``sum_{n,i} s_{n,i}`` over layers and
    training samples of the eigenvalue stiffness ratio."""
    u_train, y_train, u_test, y_test = data
    er = jnp.mean(jnp.sum((resnet.predict(params, u_train, horizon) - y_train) ** 2, axis=-1))
    ge = jnp.mean(jnp.sum((resnet.predict(params, u_test, horizon) - y_test) ** 2, axis=-1))
    proxies = resnet.layer_proxies(params, u_train, horizon)
    out = {
        "loss": objective(params, u_train, y_train, kind, weight, horizon),
        "er": er,
        "ge": ge,
        "er_rmse": jnp.sqrt(er),
        "ge_rmse": jnp.sqrt(ge),
        "penalty": jnp.mean(penalty_values(kind, params, u_train, horizon)),
    }
    out.update({name: jnp.mean(jnp.sum(values, axis=1)) for name, values in proxies.items()})
    out.update({f"{name}_median": jnp.median(jnp.sum(proxies[name], axis=1)) for name in RATIO_PROXIES})
    out["stiffness_total"] = jnp.sum(proxies["stiffness_ratio"])
    return out


def _optimizer(config: TrainConfig):
    return optax.chain(
        optax.adam(config.learning_rate),
        optax.contrib.reduce_on_plateau(
            factor=config.plateau_factor,
            patience=config.plateau_patience,
            accumulation_size=config.batches_per_epoch,
        ),
    )


def _epoch_fn(config: TrainConfig, optimizer, kind: str, weight: float):
    batch = config.batch_size

    def epoch(params, opt_state, key, u, y):
        order = jax.random.permutation(key, u.shape[0]).reshape(-1, batch)

        def step(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(objective)(params, u[idx], y[idx], kind, weight, config.horizon)
            updates, opt_state = optimizer.update(grads, opt_state, params, value=loss)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state

    return _xla.jit(epoch)


def _keys(config: TrainConfig):
    """Data, initialisation and shuffling keys: functions of the seed alone."""
    return jax.random.split(jax.random.PRNGKey(config.seed), 3)


def dataset(config: TrainConfig):
    """The ``(u_train, y_train, u_test, y_test)`` every model of ``config.seed`` is trained on."""
    return make_data(_keys(config)[0], config.dim, config.n_train, config.n_test)


@_x64.float64
def train(
    model: str = "RES",
    config: TrainConfig | None = None,
    *,
    penalty_weight: float | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train one of :data:`MODELS` on Alpine02.

    Parameters
    ----------
    model : ``"RES"``, ``"RES_L2"`` or ``"RES_stiff"`` (also ``"RES L2"``, ``"RES stiff"``).
    config : :class:`TrainConfig`; default the deck's full 10k-epoch setting.
    penalty_weight : overrides the model's ``lambda``.
    progress : show a progress bar over the epochs with the latest empirical risk.
    """
    model = resolve_model(model)
    config = TrainConfig() if config is None else config
    kind, weight = MODELS[model]
    if penalty_weight is not None:
        if not (isinstance(penalty_weight, (int, float)) and math.isfinite(penalty_weight) and penalty_weight >= 0):
            raise ValueError(f"penalty_weight={penalty_weight!r} must be a finite number >= 0.")
        weight = float(penalty_weight)
    _, init_key, shuffle_key = _keys(config)
    data = dataset(config)
    params = resnet.init_params(init_key, config.dim, config.width, config.depth)
    optimizer = _optimizer(config)
    opt_state = optimizer.init(params)
    epoch_fn = _epoch_fn(config, optimizer, kind, weight)
    evaluate_fn = _xla.jit(lambda p: evaluate(p, data, kind, weight, config.horizon))

    def record(epoch, opt_state):
        values = {name: float(v) for name, v in evaluate_fn(params).items()}
        lr = config.learning_rate * float(opt_state[1].scale)
        return {"model": model, "epoch": epoch, **values, "learning_rate": lr}

    rows = [record(0, opt_state)]
    train_time = 0.0
    epochs = tqdm(range(1, config.epochs + 1), desc=f"train {model}", unit="epoch", disable=not progress)
    for epoch in epochs:
        start = time.perf_counter()
        params, opt_state = epoch_fn(params, opt_state, jax.random.fold_in(shuffle_key, epoch), data[0], data[1])
        jax.block_until_ready(params)
        train_time += time.perf_counter() - start
        if epoch % config.record_every == 0 or epoch == config.epochs:
            rows.append(record(epoch, opt_state))
            epochs.set_postfix(er=f"{rows[-1]['er']:.3g}", ge=f"{rows[-1]['ge']:.3g}", refresh=False)
    history = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    return TrainResult(
        model=model,
        config=config,
        penalty=kind,
        penalty_weight=weight,
        params={name: np.asarray(value) for name, value in params.items()},
        history=history,
        train_time_s=train_time,
    )


@_x64.float64
def experiment(models=tuple(MODELS), config: TrainConfig | None = None, *, progress: bool = False) -> list[TrainResult]:
    """Train each of ``models`` with the same data, initial weights and shuffling."""
    return [train(name, config, progress=progress) for name in models]
