"""Conversions across the language boundary, all in plain NumPy (testable without Julia).

Going in, a :class:`~pystiffsens.Problem` becomes :class:`JuliaProblem`: a built-in name
(or the Julia source of a custom problem, ``problem.implementations["julia"]``), whether its
right-hand side comes in two parts (a :class:`~pystiffsens.SplitRHS`), the state,
the times (``saveat`` may start at ``t0``: Julia then returns ``y0`` as the first saved state)
and the parameters as one flat float64 vector, each parameter flattened column-major
(Julia's ``vec`` order) with its name and shape. Coming back, the dictionaries built by
``pystiffsens/julia/src/results.jl`` (keys ``retcode``, ``ts``, ``ys``, ``stats``; ``loss``,
``grad``, ``error``, ``gradient_time_s``) become :class:`~pystiffsens.results.Solution`
and :class:`~pystiffsens.results.GradientResult`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from ... import problems
from ...problem import Problem, SplitRHS
from ...results import STAT_NAMES, GradientResult, Solution
from ...returncode import ReturnCode

_LOSS_DEFINITION = re.compile(r"^\s*(?:function\s+)?loss\s*\(", re.MULTILINE)
_RHS_DEFINITION = re.compile(r"^\s*(?:function\s+)?rhs\s*\(", re.MULTILINE)
#: The Julia source of a SplitRHS problem defines its two parts under these names.
SPLIT_PARTS = ("rhs_stiff", "rhs_nonstiff")
_PART_DEFINITIONS = {
    name: re.compile(rf"^\s*(?:function\s+)?{name}\s*\(", re.MULTILINE) for name in SPLIT_PARTS
}


@dataclasses.dataclass(frozen=True)
class JuliaProblem:
    """A problem as the arguments of ``PyStiffSens.problem_from_arrays`` / ``custom_problem``.

    ``source`` is ``None`` for a built-in problem, else the Julia source defining ``rhs``
    (and possibly ``loss``), or ``rhs_stiff`` and ``rhs_nonstiff`` when ``split``.
    ``split`` is True for a problem whose right-hand side is a
    :class:`~pystiffsens.SplitRHS`: Julia then builds it in its two parts (``split = true``),
    a ``SplitODEProblem`` for an IMEX method. ``params`` is flat: parameter
    ``param_names[i]`` of shape ``param_shapes[i]`` follows the previous ones, flattened
    column-major.
    """

    name: str
    source: str | None
    split: bool
    y0: np.ndarray
    tspan: tuple[float, float]
    saveat: np.ndarray
    param_names: tuple[str, ...]
    param_shapes: tuple[tuple[int, ...], ...]
    params: np.ndarray


@functools.cache
def _builtin_functions() -> dict:
    """Right-hand side of each built-in problem -> (name, its default loss, whether it is split).

    A built-in with the option ``split`` (``stiff_neural_ode``) is there twice: its plain
    right-hand side and its :class:`~pystiffsens.SplitRHS` (equal for equal parts).
    """
    out = {}
    for name in problems.names():
        built = problems.get(name)
        out[built.rhs] = (name, built.loss, False)
        if "split" in problems.options(name):
            split = problems.get(name, split=True)
            out[split.rhs] = (name, split.loss, True)
    return out


def problem_args(problem: Problem) -> JuliaProblem:
    """The Julia call arguments of ``problem``; ``ValueError`` for a problem Julia cannot take.

    A built-in problem (its own right-hand side, no ``implementations["julia"]``) is named,
    and Julia uses its twin in ``pystiffsens/julia/src/problems.jl`` (in its two parts when
    built with ``split=True``); its loss must be the built-in default. Any other problem needs
    ``problem.implementations["julia"]`` (see :mod:`pystiffsens.backends.julia`): source
    defining ``rhs(u, p, t)``, or for a :class:`~pystiffsens.SplitRHS` ``rhs_stiff(u, p, t)``
    and ``rhs_nonstiff(u, p, t)``, and ``loss`` too when the problem has a custom loss.
    Parameters must be a dict of named real scalars and arrays (Julia receives them as a
    NamedTuple).
    """
    if not isinstance(problem, Problem):
        raise ValueError(f"problem={problem!r} must be a pss.Problem or one of {problems.names()}.")
    _check_params(problem)
    names = tuple(problem.params)
    shapes = tuple(tuple(int(d) for d in np.shape(problem.params[name])) for name in names)
    common: dict[str, Any] = dict(
        y0=np.asarray(problem.y0, dtype=np.float64),
        tspan=(float(problem.tspan[0]), float(problem.tspan[1])),
        saveat=np.asarray(problem.saveat, dtype=np.float64),
        param_names=names,
        param_shapes=shapes,
        params=flatten_params(problem.params, names),
    )
    split = isinstance(problem.rhs, SplitRHS)
    source = (problem.implementations or {}).get("julia")
    builtin = _builtin_functions().get(problem.rhs) if source is None else None
    if builtin is not None:
        name, default_loss, split = builtin
        if problem.loss is not default_loss:
            raise ValueError(
                f"backend='julia' computes the default loss of the built-in problem {name!r}; this one has "
                f"loss={problem.loss!r}. Give the problem implementations={{'julia': source}} with Julia source "
                "defining rhs(u, p, t) and loss(ts, ys, p), or use backend='jax'."
            )
        return JuliaProblem(name=name, source=None, split=split, **common)
    wanted = "`rhs_stiff(u, p, t)` and `rhs_nonstiff(u, p, t)`" if split else "`rhs(u, p, t)`"
    if source is None:
        raise ValueError(
            f"problem {problem.label!r} is not a built-in, so backend='julia' needs its right-hand side in "
            f"Julia: pass implementations={{'julia': source}} with source defining {wanted} (out of place, "
            "p a NamedTuple of the parameters; see examples/julia_backend_custom_rhs.py), or use backend='jax'."
        )
    if split and not all(pattern.search(source) for pattern in _PART_DEFINITIONS.values()):
        raise ValueError(
            f"problem {problem.label!r} has a SplitRHS, so its implementations['julia'] must be Julia source "
            f"defining both parts, {wanted}, of the same form as rhs (the stiff part is the one an IMEX "
            "method such as KenCarp4 treats implicitly)."
        )
    if not split and not _RHS_DEFINITION.search(source):
        raise ValueError(
            f"implementations['julia'] of problem {problem.label!r} must be Julia source defining `rhs(u, p, t)`."
        )
    if problem.loss is not None and not _LOSS_DEFINITION.search(source):
        raise ValueError(
            f"problem {problem.label!r} has a custom loss, which backend='julia' cannot run from Python; "
            "define `loss(ts, ys, p)` in implementations['julia'] as well (ys[i] is the state at ts[i])."
        )
    return JuliaProblem(name=problem.label, source=source, split=split, **common)


def _check_params(problem: Problem) -> None:
    """``ValueError`` unless ``problem.params`` is a dict of string names to real scalars or arrays."""
    params = problem.params
    advice = ("backend='julia' passes parameters as a NamedTuple of named arrays, so params must be a dict "
              "from string names to real scalars or arrays")
    if not isinstance(params, dict):
        raise ValueError(
            f"{advice}; problem {problem.label!r} has params of type {type(params).__name__}. Use backend='jax' "
            "for other parameter pytrees, or give the problem a dict of its parameters."
        )
    for name, value in params.items():
        if not isinstance(name, str):
            raise ValueError(f"{advice}; problem {problem.label!r} has the key {name!r}.")
        # Problem converts every real leaf to a float64 array; anything else is a nested pytree or structure.
        if not isinstance(value, (np.ndarray, jax.Array)):
            raise ValueError(
                f"{advice}; parameter {name!r} of problem {problem.label!r} is a {type(value).__name__}. Use "
                "backend='jax' for nested parameter pytrees, or flatten them into named arrays."
            )


def flatten_params(params: Mapping, names) -> np.ndarray:
    """The parameters ``names`` of ``params`` as one float64 vector, each flattened column-major."""
    parts = [np.asarray(params[name], dtype=np.float64).ravel(order="F") for name in names]
    return np.concatenate(parts) if parts else np.zeros(0)


def unflatten(flat, names, shapes) -> dict[str, np.ndarray]:
    """Inverse of :func:`flatten_params`: name -> array of its shape."""
    flat = np.asarray(flat, dtype=np.float64)
    sizes = [int(np.prod(shape, dtype=int)) for shape in shapes]
    if flat.shape != (sum(sizes),):
        raise ValueError(f"expected {sum(sizes)} parameter entries for {list(names)}, got shape {flat.shape}.")
    bounds = np.cumsum([0, *sizes])
    return {
        name: flat[start:stop].reshape(shape, order="F")
        for name, shape, start, stop in zip(names, shapes, bounds[:-1], bounds[1:])
    }


def stiffness_params(problem: Problem, args: JuliaProblem, stiffness) -> np.ndarray:
    """One row of flat parameters per stiffness value, set through ``problem.set_stiffness``."""
    values = np.atleast_1d(np.asarray(stiffness, dtype=np.float64))
    return np.stack([flatten_params(problem.set_stiffness(problem.params, s), args.param_names) for s in values])


_RETCODES = {code.name: code for code in ReturnCode}


def status_from_retcode(word: str) -> tuple[ReturnCode, dict]:
    """SciML retcode word -> (:class:`ReturnCode`, extra).

    The six shared codes map by name; every other word (Terminated, DtNaN, InitialFailure,
    ...) is ``Unstable`` with ``{"julia_retcode": word}`` in ``extra``.
    """
    word = str(word)
    if word in _RETCODES:
        return _RETCODES[word], {}
    return ReturnCode.Unstable, {"julia_retcode": word}


def _stats(raw: Mapping) -> dict[str, int]:
    return {name: int(raw[name]) for name in STAT_NAMES if name in raw}


def to_solution(raw: Mapping, args: JuliaProblem, solver: str, device: str) -> Solution:
    """A :class:`Solution` from Julia's solution dictionary; states past a failure are NaN."""
    status, _ = status_from_retcode(raw["retcode"])
    n = args.y0.size
    ts = np.asarray(raw["ts"], dtype=np.float64).reshape(-1)
    ys = np.asarray(raw["ys"], dtype=np.float64).reshape(ts.size, n)
    if ts.size > args.saveat.size or not np.allclose(ts, args.saveat[: ts.size], rtol=1e-12, atol=0.0):
        raise ValueError(f"Julia saved at {ts}, not at a prefix of saveat={args.saveat}.")
    full = np.full((args.saveat.size, n), np.nan)
    full[: ts.size] = ys
    return Solution(
        ts=args.saveat.copy(), ys=full, status=status, stats=_stats(raw["stats"]),
        solver=solver, backend="julia", device=device,
    )


def to_gradient_result(raw: Mapping, args: JuliaProblem, solver: str, sensitivity: str, device: str) -> GradientResult:
    """A :class:`GradientResult` from Julia's gradient dictionary.

    ``extra`` holds ``gradient_time_s`` (Julia's time in the differentiation), and where
    present the unmapped retcode word (``julia_retcode``) and the Julia error text
    (``julia_error``). A failed computation has NaN loss and gradient.
    """
    status, extra = status_from_retcode(raw["retcode"])
    if raw["error"] is not None:
        extra["julia_error"] = str(raw["error"])
    extra["gradient_time_s"] = float(raw["gradient_time_s"])
    grad = unflatten(raw["grad"], args.param_names, args.param_shapes)
    loss = float(raw["loss"])
    if status != ReturnCode.Success:
        loss = float("nan")
        grad = {name: np.full_like(value, np.nan) for name, value in grad.items()}
    return GradientResult(
        loss=loss, grad=grad, status=status, stats=_stats(raw["stats"]), solver=solver,
        sensitivity=sensitivity, backend="julia", device=device, extra=extra,
    )
