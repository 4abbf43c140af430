"""Result objects returned by every backend.

Called on concrete values, ``pss.solve`` and ``pss.gradient`` return plain NumPy here.
Called inside a JAX transformation, ``pss.solve`` returns a :class:`Solution` holding JAX
arrays: it is a pytree, so it can leave a ``jax.jit`` or ``jax.vmap``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from ._params import path_name
from .returncode import ReturnCode

STAT_NAMES = ("n_steps", "n_rejected", "n_f", "n_jac", "n_lu")
"""Cost counters of a solve: accepted steps, rejected steps, RHS evaluations, Jacobian
evaluations and LU factorisations."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Solution:
    """A solved problem.

    Attributes
    ----------
    ts, ys : saved times and states (``ys[i]`` is the state at ``ts[i]``); past a failure
        the states are NaN. Differentiable in the parameters and ``y0`` when ``pss.solve``
        is called inside ``jax.grad``/``jax.jvp`` (the rule of ``sensitivity=``).
    status : :class:`~pystiffsens.ReturnCode` (an int32 array inside a transformation).
    stats : cost counters, keys :data:`STAT_NAMES`.
    solver, backend, device : what produced it.
    step_ts : times of every accepted step (``step_ts[0] == t0``), or None. Inside a
        transformation the records have a fixed length, ``step_ts`` +inf and ``step_ys`` NaN
        past the last step, and carry no derivative.
    step_ys : states at ``step_ts``, or None.
    """

    ts: Any
    ys: Any
    status: Any
    stats: dict
    solver: str = dataclasses.field(metadata=dict(static=True))
    backend: str = dataclasses.field(default="jax", metadata=dict(static=True))
    device: str = dataclasses.field(default="cpu", metadata=dict(static=True))
    step_ts: Any = None
    step_ys: Any = None

    @property
    def success(self) -> bool:
        return self.status == ReturnCode.Success


@dataclasses.dataclass(frozen=True)
class GradientResult:
    """Loss and parameter gradient of a problem.

    Attributes
    ----------
    loss : the loss value (NaN on failure).
    grad : the gradient, structured as ``params`` (a dict: name -> array of the parameter's
        shape; None in place of leaves that are not parameters); NaN on failure.
    status : :class:`~pystiffsens.ReturnCode` of the whole computation (forward and, for
        adjoints, backward solve).
    stats : forward counters (:data:`STAT_NAMES`) and, for adjoints, the backward ones
        prefixed ``backward_``.
    sensitivity : the algorithm that computed it; with ``sensitivity=None``/``"auto"`` the
        one chosen, and ``extra["sensitivity_choice"]`` says by which rule.
    """

    loss: float
    grad: Any
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

    def flat_grad(self) -> dict[str, float]:
        """Gradient with array entries expanded to ``name[i]`` / ``name[i,j]`` scalar keys."""
        return flatten_params(self.grad)


def flatten_params(tree) -> dict[str, float]:
    """A parameter pytree as scalar entries ``name`` / ``name[i]`` / ``name[i,j]`` (``a.b[0]`` for nested ones).

    A dict's entries come in its own order (JAX would sort its keys), so a frame lists the
    parameters as the problem names them.
    """
    if isinstance(tree, dict):
        return {_entry(str(key), suffix): value for key, item in tree.items() for suffix, value in flatten_params(item).items()}
    out: dict[str, float] = {}
    for path, value in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf" or isinstance(value, bool):
            continue  # structure, not a parameter
        name = path_name(path)
        if arr.ndim == 0:
            out[name] = float(arr)
        else:
            for index in np.ndindex(arr.shape):
                out[f"{name}[{','.join(map(str, index))}]"] = float(arr[index])
    return out


def _entry(key: str, suffix: str) -> str:
    """The name of entry ``suffix`` (named from its own root, ``params``) under the dict key ``key``."""
    if suffix.startswith("params"):
        return key + suffix[len("params"):]
    return key + (suffix if suffix.startswith("[") else "." + suffix)
