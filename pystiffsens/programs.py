"""The JAX programs behind ``pss.solve``, ``pss.gradient``, ``pss.make_gradient_fn`` and sweep batches.

Each is a pure function of array arguments, specialised by a hashable :class:`Spec` (the
problem's functions and parameter structure, the solver, the sensitivity algorithm). Its
arguments are the parameter leaves, ``y0``, ``t0``, the saved times and the
:class:`~pystiffsens.options.Options` (whose tolerances and ``dt`` are leaves), so a
program compiled once serves every new parameter value, initial state, time grid of the
same length and tolerance. The derivative machinery is the sensitivity algorithms'
forward and backward halves (:mod:`pystiffsens.sensitivity`), the same that
``jax.grad`` through ``pss.solve`` runs (:mod:`pystiffsens.sensitivity.rules`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from . import _params
from .problem import with_params
from .results import STAT_NAMES
from .returncode import ReturnCode
from .sensitivity.base import AbstractSensitivity, FlatProblem, combine_status
from .sensitivity.rules import Rule, branches, ladder, primal
from .sensitivity.rules import solve as differentiable_solve
from .solvers.base import AbstractSolver

#: ``info`` vector of a solve program: status, the counters of STAT_NAMES, then ``buffer_full``.
INFO = ("status", *STAT_NAMES, "buffer_full")
#: Counters of a gradient: the forward solve's, then those of a backward solve.
GRADIENT_STATS = (*STAT_NAMES, *(f"backward_{name}" for name in STAT_NAMES))


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a program is specialised to besides its array arguments.

    ``rhs(t, y, params)`` and ``loss(ts, ys, params)`` the problem's functions, ``structure``
    its parameter structure; ``knob`` the stiffness knob of a sweep batch.
    """

    rhs: Callable
    structure: _params.Structure
    solver: AbstractSolver
    algorithm: AbstractSensitivity | None = None
    loss: Callable | None = None
    knob: Any = None

    def flat(self, leaves, t0, ts) -> tuple[FlatProblem, Any, Callable]:
        """``(FlatProblem, theta, unravel)`` with the parameters raveled into one vector ``theta``."""
        theta, unravel = ravel_pytree(list(leaves))
        merge = self.structure.merge
        rhs = with_params(self.rhs, lambda th: merge(unravel(th)), self.structure.scalar_names)
        return FlatProblem(rhs, t0, ts), theta, unravel


def solve(spec: Spec, save_steps: int) -> Callable:
    """``(leaves, y0, t0, ts, options) -> (ys, info, step_t, step_y)``: a plain solve (eager ``pss.solve``).

    ``info`` holds :data:`INFO` as int32; the step records (``save_steps`` long, None when 0)
    keep the state of every accepted step.
    """

    def run(leaves, y0, t0, ts, options):
        problem, theta, _ = spec.flat(leaves, t0, ts)
        out = primal(problem.rhs, spec.solver, theta, y0, t0, ts, options, save_steps)
        info = jnp.stack([out.status, *(out.stats[name] for name in STAT_NAMES), out.buffer_full]).astype(jnp.int32)
        return out.ys, info, out.step_t, out.step_y

    return run


def traced_solve(spec: Spec, leaves, y0, t0, ts, options, *, save_steps: int, record_lengths: tuple[int, ...]):
    """The differentiable solve inside a user's transformation (:mod:`pystiffsens.sensitivity.rules`)."""
    problem, _, _ = spec.flat(leaves, t0, ts)
    assert spec.algorithm is not None
    rule = Rule(problem.rhs, spec.solver, spec.algorithm, options.max_saved_steps, record_lengths, save_steps)
    return differentiable_solve(rule, leaves, y0, t0, ts, options)


def gradient(spec: Spec, lengths: tuple[int, ...]) -> Callable:
    """``(leaves, y0, t0, ts, options) -> {"loss", "grad", "status", "stats", "buffer_full"}``.

    ``grad`` is the list of gradient leaves. With several ``lengths`` the records start at
    the first and move to the next only when a solve filled them (:func:`~pystiffsens.sensitivity.rules.ladder`);
    ``buffer_full`` is then about the last. When the solve fails (or the loss or gradient is
    not finite) the loss and every gradient entry are NaN and ``status`` says why. The last of
    several lengths runs the algorithm with checkpoints (:func:`~pystiffsens.sensitivity.rules.branches`).
    """
    assert spec.algorithm is not None

    def run(leaves, y0, t0, ts, options):
        def at(length, algorithm):
            out = _gradient(spec, length, algorithm, leaves, y0, t0, ts, options)
            return out, out["buffer_full"]

        return ladder(at, branches(spec.algorithm, lengths))

    return run


def _gradient(spec: Spec, length: int, algorithm, leaves, y0, t0, ts, options) -> dict:
    problem, theta, unravel = spec.flat(leaves, t0, ts)
    solver, merge, loss_fn = spec.solver, spec.structure.merge, spec.loss
    assert loss_fn is not None
    fwd = algorithm.forward(problem, solver, theta, y0, options, saved_steps=length)
    loss_of = lambda ys, th: loss_fn(ts, ys, merge(unravel(th)))
    loss, (g_ys, g_explicit) = jax.value_and_grad(loss_of, argnums=(0, 1))(fwd.ys, theta)
    back = algorithm.backward(problem, solver, theta, y0, options, fwd, g_ys, saved_steps=length)
    grad = g_explicit + back.g_theta
    status = combine_status(fwd.status, back.status)
    # A solve that succeeded but produced a non-finite loss or gradient is no success.
    finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(grad))
    status = jnp.where((status == ReturnCode.Success) & ~finite, ReturnCode.Unstable, status)
    failed = status != ReturnCode.Success
    stats = {**fwd.stats, **{f"backward_{name}": value for name, value in back.stats.items()}}
    return {
        "loss": jnp.where(failed, jnp.nan, loss),
        "grad": unravel(jnp.where(failed, jnp.nan, grad)),
        "status": status.astype(jnp.int32),
        "stats": {name: jnp.asarray(value, jnp.int32) for name, value in stats.items()},
        "buffer_full": jnp.asarray(fwd.buffer_full | back.buffer_full),
    }


def packed(run: Callable) -> Callable:
    """A gradient program whose outputs are two arrays, which reach the host faster than a dict of scalars.

    ``values``: the loss, then every gradient entry (the leaves raveled in order);
    ``info``: status, ``buffer_full``, then :data:`GRADIENT_STATS` (-1 for a counter the
    algorithm does not report). :func:`unpack` inverts it.
    """

    def run_packed(*args):
        out = run(*args)
        values = jnp.concatenate([out["loss"][None], *(jnp.ravel(leaf) for leaf in out["grad"])])
        stats = [out["stats"].get(name, jnp.int32(-1)) for name in GRADIENT_STATS]
        info = jnp.stack([out["status"], out["buffer_full"].astype(jnp.int32), *stats])
        return values, info

    return run_packed


def unpack(values, info, structure: _params.Structure) -> dict:
    """The gradient outputs (host NumPy) of :func:`packed` arrays; only the counters the algorithm reports."""
    offsets, info = structure.offsets, info.tolist()
    grad = [values[1 + a:1 + b].reshape(shape) for a, b, shape in zip(offsets, offsets[1:], structure.shapes)]
    stats = {name: value for name, value in zip(GRADIENT_STATS, info[2:]) if value >= 0}
    return {"loss": values[0], "grad": grad, "status": info[0], "buffer_full": bool(info[1]), "stats": stats}


def batch(spec: Spec, length: int, set_stiffness: Callable) -> Callable:
    """``(leaves, y0, t0, ts, options, stiffness) -> packed gradient outputs``, vmapped over the stiffness values.

    ``set_stiffness(params, s)`` applies ``spec.knob``; every value is an independent lane,
    so a failed value leaves the others untouched.
    """
    merge, leaves_of = spec.structure.merge, spec.structure.leaves_of
    one = packed(gradient(spec, (length,)))

    def run(leaves, y0, t0, ts, options, stiffness):
        def lane(s):
            params = set_stiffness(merge(leaves), s)
            return one([jnp.asarray(leaf, jnp.float64) for leaf in leaves_of(params)], y0, t0, ts, options)

        return jax.vmap(lane)(stiffness)

    return run
