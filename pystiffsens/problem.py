"""The problem definition shared by every solver, sensitivity and backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _validation

StiffnessKnob = str | Callable[[dict, Any], dict] | None


def final_state_sum(ts, ys, p):
    """Default loss: the sum of the last saved state."""
    return jnp.sum(ys[-1])


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A parameterised initial-value problem ``y' = rhs(t, y, p)``, ``y(t0) = y0``.

    Parameters
    ----------
    rhs : callable ``(t, y, p) -> dy/dt`` written with ``jax.numpy``.
    y0 : initial state, 1-D.
    tspan : ``(t0, t1)`` with ``t0 < t1``.
    params : dict of named parameters (scalars or arrays); gradients are taken with respect
        to every entry.
    loss : callable ``(ts, ys, p) -> scalar`` on the states saved at ``saveat``. Default: the
        sum of the final state.
    saveat : increasing times in ``(t0, t1]`` at which states are saved (and which the
        integrator steps onto exactly). Default: ``[t1]``.
    stiffness : the parameter name a stiffness value sets, or a callable
        ``(params, s) -> params``.
    name : label used in frames and reports.
    exact_solution : optional ``(t, p) -> y(t)`` in closed form (JAX); exact parameter
        sensitivities are then obtained by differentiating it.
    julia_rhs : optional Julia source of the same right-hand side, used by ``backend="julia"``.
    """

    rhs: Callable
    y0: Any
    tspan: tuple[float, float]
    params: dict
    loss: Callable | None = None
    saveat: Any = None
    stiffness: StiffnessKnob = None
    name: str | None = None
    exact_solution: Callable | None = None
    julia_rhs: str | None = None
    description: str = ""

    def __post_init__(self):
        tspan = _validation.check_tspan(self.tspan)
        object.__setattr__(self, "tspan", tspan)
        if not isinstance(self.params, dict):
            raise ValueError(f"params={self.params!r} must be a dict of named parameters.")
        y0 = np.asarray(self.y0, dtype=np.float64)
        if y0.ndim != 1 or y0.size == 0:
            raise ValueError(f"y0={self.y0!r} must be a non-empty 1-D array.")
        _validation.check_finite_tree("y0", y0)
        _validation.check_finite_tree("params", self.params)
        object.__setattr__(self, "y0", y0)
        params = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in self.params.items()}
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "saveat", _check_saveat(self.saveat, tspan))
        if isinstance(self.stiffness, str) and self.stiffness not in params:
            raise ValueError(
                f"stiffness={self.stiffness!r} is not a parameter; valid names: {sorted(params)}."
            )
        if self.stiffness is not None and not isinstance(self.stiffness, str) and not callable(self.stiffness):
            raise ValueError(f"stiffness={self.stiffness!r} must be a parameter name, a callable or None.")
        _check_functions(self, params)

    @property
    def loss_fn(self) -> Callable:
        return self.loss if self.loss is not None else final_state_sum

    @property
    def structure_key(self) -> tuple:
        """Everything a compiled solve depends on besides the parameter values."""
        return (self.rhs, self.loss_fn, self.tspan, tuple(self.y0.tolist()), tuple(self.saveat.tolist()))

    @property
    def label(self) -> str:
        return str(self.name or getattr(self.rhs, "__name__", "problem"))

    def set_stiffness(self, params: dict, s) -> dict:
        """Return ``params`` with the stiffness knob set to ``s`` (JAX-traceable)."""
        if self.stiffness is None:
            raise ValueError(f"Problem {self.label!r} has no stiffness knob; pass stiffness= when building it.")
        if isinstance(self.stiffness, str):
            return {**params, self.stiffness: jnp.asarray(s, dtype=jnp.float64)}
        return self.stiffness(params, s)

    def with_stiffness(self, s) -> Problem:
        return dataclasses.replace(self, params=self.set_stiffness(self.params, s))

    def replace(self, **changes) -> Problem:
        return dataclasses.replace(self, **changes)

    def exact_loss_and_grad(self, params: dict | None = None):
        """Loss and parameter gradient from the closed-form solution, or ``None``."""
        if self.exact_solution is None:
            return None
        params = self.params if params is None else params
        ts = jnp.asarray(self.saveat)

        def exact_loss(p):
            ys = jax.vmap(lambda t: self.exact_solution(t, p))(ts)
            return self.loss_fn(ts, ys, p)

        return jax.value_and_grad(exact_loss)(params)


def _check_saveat(saveat, tspan) -> np.ndarray:
    if saveat is None:
        return np.array([tspan[1]])
    arr = np.atleast_1d(np.asarray(saveat, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"saveat={saveat!r} must be a non-empty 1-D array of finite times.")
    if np.any(np.diff(arr) <= 0):
        raise ValueError(f"saveat={saveat!r} must be strictly increasing.")
    if arr[0] <= tspan[0] or arr[-1] > tspan[1]:
        raise ValueError(f"saveat={saveat!r} must lie in (t0, t1] = ({tspan[0]}, {tspan[1]}].")
    return arr


def _check_functions(problem: Problem, params: dict) -> None:
    """Trace rhs, loss, the stiffness knob and the closed-form solution once (``jax.eval_shape``).

    ``ValueError`` naming the function and the fix when one reads a missing parameter, returns
    something other than one array of the right shape (a tuple, a vector loss), or a stiffness
    knob sets parameters that do not exist or changes none.
    """
    t0 = jnp.float64(problem.tspan[0])
    y0 = jnp.asarray(problem.y0)
    ts = jnp.asarray(problem.saveat)
    out = _validation.traced("rhs(t, y, p)", problem.rhs, t0, y0, params, params=params)
    _check_array("rhs(t, y, p)", out, y0.shape, "the shape of y0")
    ys = jax.ShapeDtypeStruct((ts.size, y0.size), jnp.float64)
    loss = _validation.traced("loss(ts, ys, p)", problem.loss_fn, ts, ys, params, params=params)
    if not isinstance(loss, jax.ShapeDtypeStruct) or loss.shape != ():
        raise ValueError(
            f"loss(ts, ys, p) must return a scalar, but returns {_describe(loss)}; reduce it, e.g. with jnp.sum(...)."
        )
    if problem.exact_solution is not None:
        exact = _validation.traced("exact_solution(t, p)", problem.exact_solution, t0, params, params=params)
        _check_array("exact_solution(t, p)", exact, y0.shape, "the shape of y0")
    if problem.stiffness is not None and not isinstance(problem.stiffness, str):
        _check_knob(problem.stiffness, params)


def _check_knob(knob, params: dict) -> None:
    """A callable stiffness knob must return params with the same names and shapes, and change one."""
    shapes = _validation.traced("stiffness(params, s)", knob, params, jnp.float64(1.0), params=params)
    if not isinstance(shapes, dict):
        raise ValueError(f"stiffness(params, s) must return the params dict, but returns {_describe(shapes)}.")
    extra, lacking = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
    if extra or lacking:
        raise ValueError(
            f"stiffness(params, s) returns parameters {sorted(shapes)}: "
            + (f"{extra} not in params (a misspelt name?)" if extra else "")
            + ("; " if extra and lacking else "")
            + (f"{lacking} missing" if lacking else "")
            + f". It must set existing names only; valid names: {sorted(params)}, e.g. lambda p, s: {{**p, 'lam': s}}."
        )
    for name, shape in shapes.items():
        if not isinstance(shape, jax.ShapeDtypeStruct) or shape.shape != params[name].shape:
            raise ValueError(
                f"stiffness(params, s) sets {name!r} to {_describe(shape)}, but params[{name!r}] has shape "
                f"{params[name].shape}; keep each parameter's shape."
            )
    low, high = knob(params, 1.0), knob(params, 1e6)
    if all(np.array_equal(np.asarray(low[name]), np.asarray(high[name])) for name in params):
        raise ValueError(
            "stiffness(params, s) returns the same parameters for s=1 and s=1e6: it sets no parameter from s, so a "
            f"sweep would not change the problem. Set one of {sorted(params)} from s."
        )


def _check_array(what: str, out, shape: tuple, expected: str) -> None:
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(
            f"{what} must return one array of shape {shape} ({expected}), but returns {_describe(out)}; "
            "build it with jnp.stack([...]) or jnp.array([...])."
        )
    if out.shape != shape:
        raise ValueError(f"{what.split('(')[0]} returns shape {out.shape} but y0 has shape {shape}; they must match.")


def _describe(value) -> str:
    """A short description of what a traced function returned."""
    if isinstance(value, jax.ShapeDtypeStruct):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"
