"""Result objects returned by every backend: plain NumPy, no JAX arrays."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .returncode import ReturnCode

STAT_NAMES = ("n_steps", "n_rejected", "n_f", "n_jac", "n_lu")
"""Cost counters of a solve: accepted steps, rejected steps, RHS evaluations, Jacobian
evaluations and LU factorisations."""


@dataclasses.dataclass(frozen=True)
class Solution:
    """A solved problem.

    Attributes
    ----------
    ts, ys : saved times and states (``ys[i]`` is the state at ``ts[i]``); past a failure
        the states are NaN.
    status : :class:`~pystiffsens.ReturnCode`.
    stats : cost counters, keys :data:`STAT_NAMES`.
    solver, backend, device : what produced it.
    step_ts : times of every accepted step (``step_ts[0] == t0``).
    step_ys : states at ``step_ts``.
    """

    ts: np.ndarray
    ys: np.ndarray
    status: ReturnCode
    stats: dict[str, int]
    solver: str
    backend: str = "jax"
    device: str = "cpu"
    step_ts: np.ndarray | None = None
    step_ys: np.ndarray | None = None

    @property
    def success(self) -> bool:
        return self.status == ReturnCode.Success


@dataclasses.dataclass(frozen=True)
class GradientResult:
    """Loss and parameter gradient of a problem.

    Attributes
    ----------
    loss : the loss value (NaN on failure).
    grad : parameter name -> gradient with the parameter's shape (NaN on failure).
    status : :class:`~pystiffsens.ReturnCode` of the whole computation (forward and, for
        adjoints, backward solve).
    stats : forward counters (:data:`STAT_NAMES`) and, for adjoints, the backward ones
        prefixed ``backward_``.
    sensitivity : the algorithm that computed it; with ``sensitivity=None``/``"auto"`` the
        one chosen, and ``extra["sensitivity_choice"]`` says by which rule.
    """

    loss: float
    grad: dict[str, np.ndarray]
    status: ReturnCode
    stats: dict[str, int]
    solver: str
    sensitivity: str
    backend: str = "jax"
    device: str = "cpu"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.status == ReturnCode.Success

    @classmethod
    def from_output(cls, out: dict, *, solver: str, sensitivity: str, device: str) -> GradientResult:
        """From the (host) output dict of ``pss.make_gradient_fn``; counters in :data:`STAT_NAMES` order first."""
        stats = {name: int(value) for name, value in out["stats"].items()}
        ordered = {name: stats[name] for name in STAT_NAMES if name in stats} | stats
        return cls(
            loss=float(out["loss"]),
            grad={name: np.asarray(value) for name, value in out["grad"].items()},
            status=ReturnCode.from_value(out["status"]),
            stats=ordered,
            solver=solver,
            sensitivity=sensitivity,
            backend="jax",
            device=device,
        )

    def flat_grad(self) -> dict[str, float]:
        """Gradient with array entries expanded to ``name[i]`` / ``name[i,j]`` scalar keys."""
        return flatten_params(self.grad)


def flatten_params(tree: dict) -> dict[str, float]:
    """A dict of named arrays as scalar entries ``name`` / ``name[i]`` / ``name[i,j]``."""
    out: dict[str, float] = {}
    for name, value in tree.items():
        arr = np.asarray(value)
        if arr.ndim == 0:
            out[name] = float(arr)
        else:
            for index in np.ndindex(arr.shape):
                out[f"{name}[{','.join(map(str, index))}]"] = float(arr[index])
    return out
