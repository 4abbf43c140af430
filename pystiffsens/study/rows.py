"""Rows of the gradient frame: from a batch's results, from closed-form gradients, and for failed tasks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _xla
from ..backends.base import BatchResult
from ..problem import Problem
from ..results import GradientResult, flatten_params
from ..returncode import ReturnCode
from . import resume
from .schema import COUNTER_COLUMNS, GRADIENT_COLUMNS, NOT_REPORTED


def batch_rows(key: dict, stiffness: np.ndarray, batch: BatchResult, exact: dict[str, np.ndarray]) -> pd.DataFrame:
    """The gradient-frame rows of one batch.

    ``exact`` maps flat parameter names to exact gradients at ``stiffness`` (empty when the
    problem has no closed form).
    """
    share = batch.run_time_s / len(stiffness)
    columns: dict[str, list] = {name: [] for name in GRADIENT_COLUMNS}
    for i, (value, result) in enumerate(zip(stiffness, batch.results)):
        for param, grad in result.flat_grad().items():
            for name, entry in key.items():
                columns[name].append(entry)
            columns["stiffness"].append(float(value))
            columns["param"].append(param)
            columns["grad"].append(grad)
            columns["abs_grad"].append(abs(grad))
            columns["exact_grad"].append(float(exact[param][i]) if param in exact else np.nan)
            columns["loss"].append(float(result.loss))
            columns["status"].append(ReturnCode.from_value(result.status).name)
            for name in COUNTER_COLUMNS:
                columns[name].append(int(result.stats.get(name, NOT_REPORTED)))
            columns["wall_time_s"].append(share)
            columns["compile_time_s"].append(float(batch.compile_time_s))
            columns["rel_error_exact"].append(np.nan)
            columns["far_from_exact"].append(False)
    rows = pd.DataFrame(columns)
    rows["rel_error_exact"] = resume.rel_error_exact(rows)
    rows["far_from_exact"] = resume.far_from_exact(rows["rel_error_exact"].to_numpy())
    return rows


def failed_batch(key: dict, problem: Problem, stiffness: np.ndarray) -> BatchResult:
    """NaN results (status Unstable, no counters) for every value of a batch that could not run."""
    nan_grad = jax.tree_util.tree_map(lambda value: np.full(np.shape(value), np.nan), problem.params)
    failed = GradientResult(
        loss=np.nan, grad=nan_grad, status=ReturnCode.Unstable, stats={},
        solver=key["solver"], sensitivity=key["sensitivity"], backend=key["backend"], device=key["device"],
    )
    return BatchResult([failed] * len(stiffness), np.nan, np.nan)


def exact_gradients(problem: Problem, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Flat parameter name -> closed-form gradient at every stiffness value ({} without a closed form)."""
    if problem.exact_solution is None:
        return {}
    exact = _xla.jit(jax.vmap(lambda s: problem.exact_loss_and_grad(problem.set_stiffness(problem.params, s))))
    _, grad = jax.device_get(exact(jnp.asarray(grid)))
    # Flattened like the solver gradients: array entries become "name[i]".
    flat = [flatten_params(jax.tree_util.tree_map(lambda value: value[i], grad)) for i in range(grid.size)]
    return {name: np.array([entry[name] for entry in flat]) for name in flat[0]}


def in_grid_order(rows: pd.DataFrame, grid: np.ndarray) -> pd.DataFrame:
    """``rows`` sorted by the position of their stiffness in ``grid``, parameter order kept."""
    position = resume.positions(rows["stiffness"].to_numpy(), grid)
    return rows.iloc[np.argsort(position, kind="stable")].reset_index(drop=True)
