"""A solve as a differentiable JAX function: each sensitivity algorithm becomes JAX's derivative rule.

:func:`solve` integrates and returns the states at the stops. Under ``jax.jvp``/``jax.grad``
its derivative is the chosen algorithm's, through the two halves every algorithm has
(:mod:`.base`):

* forward-mode algorithms (``forward_mode = True``) define a ``jax.custom_jvp``: the forward
  half computes the sensitivities ``S = d ys / d theta`` (and ``d ys / d y0`` when ``y0`` is
  perturbed), the tangent is ``S @ d theta``. That tangent is linear in ``d theta`` with
  ``S`` computed from primal values alone, so JAX also transposes it: ``jax.grad`` works
  and contracts the cotangent with the same ``S`` (what ``ForwardDiffSensitivity`` means).
  ``S`` has a column only for the parameter leaves that are perturbed (``wrt_theta`` of
  :class:`~.base.ForwardModeSensitivity`): a leaf whose tangent is a symbolic zero (a
  constant of the caller's function, or a leaf it does not differentiate) costs no tangent,
  as SciMLSensitivity's forward mode carries one dual part per parameter differentiated. A
  PEtab model's solve takes every model input, of which few depend on the estimated
  parameters (benchmarks/README.md, section 8: Smith_BMCSystBiol2013, 16 of 392);
* adjoints define a ``jax.custom_vjp``: the backward half maps the cotangents on the saved
  states to cotangents on ``theta`` and ``y0`` (``jax.jvp`` is then refused, as for
  diffrax's adjoints).

A derivative through a failed solve (forward or backward) is NaN, never a silent number.
Derivatives with respect to the times (``t0``, the saved times) and the tolerances are not
defined here and raise ``ValueError``.

Step records. An adjoint reads the forward solve's per-step records. With a fixed
``saved_steps`` they are kept by the forward pass. With ``saved_steps=None`` their length
follows the solve: the forward pass records nothing and the backward rule re-solves with
records of the lengths of :func:`~pystiffsens.memory.program_lengths`, moving to the next
length only when a solve filled them (:func:`ladder`), at the price of one more forward
solve. The longest runs the algorithm with checkpoints (:func:`branches`), so that no branch
holds records ``max_steps`` long.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.flatten_util import ravel_pytree

from ..integrate import integrate
from ..lanes import any_lane
from ..returncode import ReturnCode
from .base import AbstractSensitivity, FlatProblem


class Solved(NamedTuple):
    """What :func:`solve` returns: states at the stops, status, counters and, when asked, the step records."""

    ys: Any
    status: Any
    stats: dict
    step_t: Any = None  # (saved_steps + 1,) times of the accepted steps, +inf past the last
    step_y: Any = None  # (saved_steps + 1, n) states there, NaN past the last
    buffer_full: Any = False  # the solve stopped because the step records were full


class Rule(NamedTuple):
    """The static part of a differentiable solve (hashable; JAX's ``nondiff_argnums``)."""

    rhs: Callable  # (t, y, theta) -> dy/dt, theta flat
    solver: Any
    algorithm: AbstractSensitivity
    saved_steps: int | None  # records of the forward pass; None: sized to the solve in the backward rule
    record_lengths: tuple[int, ...]  # the lengths tried when saved_steps is None
    save_steps: int  # length of the step records returned (0: none)


def steps_of(solver, traj, n: int):
    """``(step_t, step_y)`` of a trajectory that recorded ``y`` or the states (``y`` of each, first ``n`` components)."""
    step_y = (jax.vmap(solver.y_of)(traj.states) if traj.step_y is None else traj.step_y)[:, :n]
    valid = (jnp.arange(step_y.shape[0]) <= traj.n_steps)[:, None]
    return traj.step_t, jnp.where(valid, step_y, jnp.nan)


def solved(solver, traj, ys, n: int, save_steps: int) -> Solved:
    """The :class:`Solved` of a trajectory (with its step records when ``save_steps``; they carry no derivative)."""
    if not save_steps:
        return Solved(ys, traj.status, traj.stats)
    step_t, step_y = steps_of(solver, traj, n)
    return Solved(ys, traj.status, traj.stats, lax.stop_gradient(step_t), lax.stop_gradient(step_y), traj.buffer_full)


def primal(rhs, solver, theta, y0, t0, ts, options, save_steps: int) -> Solved:
    """A plain solve, recording ``save_steps`` steps (0: none); what a solve is when not differentiated."""
    traj = integrate(rhs, solver, y0, theta, t0=t0, stops=ts, options=options, saved_steps=save_steps or None,
                     record_y=bool(save_steps))
    return solved(solver, traj, traj.ys, y0.shape[0], save_steps)


def _primal(rule: Rule, theta, y0, t0, ts, options) -> Solved:
    return primal(rule.rhs, rule.solver, theta, y0, t0, ts, options, rule.save_steps)


def solve(rule: Rule, leaves, y0, t0, ts, options) -> Solved:
    """Integrate from ``(t0, y0)`` through the stops ``ts``, differentiable in the parameter ``leaves`` (a sequence of
    float arrays, raveled in order into the ``theta`` of ``rule.rhs``) and ``y0`` by ``rule.algorithm``."""
    t0, ts = jnp.asarray(t0, jnp.float64), jnp.asarray(ts, jnp.float64)
    if rule.algorithm.forward_mode:
        return _forward_mode(rule, tuple(leaves), y0, t0, ts, options)
    return _adjoint(rule, _ravel(leaves), y0, t0, ts, options)


def _ravel(leaves):
    """``theta``: the parameter leaves raveled in order into one vector, as :meth:`pystiffsens.programs.Spec.flat` does."""
    return ravel_pytree(list(leaves))[0]


def _refuse_time_derivatives(rule: Rule, perturbed: dict) -> None:
    bad = [name for name, flag in perturbed.items() if flag]
    if bad:
        raise ValueError(
            f"pss.solve is differentiable in params and y0 only; a derivative with respect to {', '.join(bad)} was "
            f"asked for (sensitivity={rule.algorithm.name!r}). Pass those as constants (e.g. with jax.lax.stop_gradient)."
        )


def _is_zero(tangent) -> bool:
    return isinstance(tangent, SymbolicZero) or all(
        isinstance(leaf, SymbolicZero) for leaf in jax.tree_util.tree_leaves(tangent, is_leaf=_symbolic)
    )


def _symbolic(x) -> bool:
    return isinstance(x, SymbolicZero)


def _float0_like(tree):
    """Zero tangents for integer outputs (JAX's ``float0``) and for the step records."""
    def zero(x):
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact):
            return jnp.zeros_like(x)
        return np.zeros(x.shape, dtype=jax.dtypes.float0)

    return jax.tree_util.tree_map(zero, tree)


# ------------------------------------------------------------------ forward mode: custom_jvp


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _forward_mode(rule, leaves, y0, t0, ts, options):
    return _primal(rule, _ravel(leaves), y0, t0, ts, options)


def _forward_mode_jvp(rule, primals, tangents):
    leaves, y0, t0, ts, options = primals
    d_leaves, d_y0, d_t0, d_ts, d_options = tangents
    _refuse_time_derivatives(rule, {"t0": not _is_zero(d_t0), "saveat": not _is_zero(d_ts),
                                    "the tolerances or dt": not _is_zero(d_options)})
    wrt_y0 = not _is_zero(d_y0)
    moving = [i for i, d in enumerate(d_leaves) if not _is_zero(d)]
    theta = _ravel(leaves)
    positions = _positions(leaves, moving)
    problem = FlatProblem(rule.rhs, t0, ts)
    fwd = rule.algorithm.forward(problem, rule.solver, theta, y0, options, saved_steps=rule.save_steps or None,
                                 wrt_y0=wrt_y0, wrt_theta=positions, record_states=bool(rule.save_steps))
    # NaN sensitivities after a failure (in the primal values, so that the transposed rule is NaN too).
    failed = fwd.status != ReturnCode.Success
    S_theta, S_y0 = (None if S is None else jnp.where(failed, jnp.nan, S) for S in fwd.residual)
    d_ys = jnp.zeros_like(fwd.ys)
    if moving:
        d_ys = d_ys + jnp.einsum("knp,p->kn", S_theta, _ravel([d_leaves[i] for i in moving]))
    if wrt_y0:
        d_ys = d_ys + jnp.einsum("knm,m->kn", S_y0, d_y0)
    out = solved(rule.solver, fwd.trajectory, fwd.ys, y0.shape[0], rule.save_steps)
    return out, _float0_like(out)._replace(ys=d_ys)


_forward_mode.defjvp(_forward_mode_jvp, symbolic_zeros=True)


def _positions(leaves, moving: list[int]):
    """The entries of ``theta`` (the ``leaves`` raveled) that the leaves at the indices ``moving`` fill; None for all."""
    if len(moving) == len(leaves):
        return None
    offsets = np.cumsum([0] + [int(np.size(leaf)) for leaf in leaves])
    return np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in moving] + [np.zeros(0, int)])


# ------------------------------------------------------------------ adjoints: custom_vjp


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _adjoint(rule, theta, y0, t0, ts, options):
    return _primal(rule, theta, y0, t0, ts, options)


def _adjoint_fwd(rule, theta, y0, t0, ts, options):
    perturbed = {"t0": t0.perturbed, "saveat": ts.perturbed,
                 "the tolerances or dt": any(leaf.perturbed for leaf in jax.tree_util.tree_leaves(options))}
    _refuse_time_derivatives(rule, perturbed)
    theta, y0, t0, ts = theta.value, y0.value, t0.value, ts.value
    options = jax.tree_util.tree_map(lambda leaf: leaf.value, options)
    if rule.saved_steps is None:  # records sized in the backward rule
        out = _primal(rule, theta, y0, t0, ts, options)
        return out, (theta, y0, t0, ts, options, out.status, None)
    problem = FlatProblem(rule.rhs, t0, ts)
    fwd = rule.algorithm.forward(problem, rule.solver, theta, y0, options, saved_steps=rule.saved_steps,
                                 record_states=bool(rule.save_steps))
    out = solved(rule.solver, fwd.trajectory, fwd.ys, y0.shape[0], rule.save_steps)
    return out, (theta, y0, t0, ts, options, fwd.status, fwd)


def _adjoint_bwd(rule, residual, cotangent):
    theta, y0, t0, ts, options, status, fwd = residual
    g_ys = cotangent.ys
    g_ys = jnp.zeros((ts.shape[0], y0.shape[0]), y0.dtype) if isinstance(g_ys, SymbolicZero) else g_ys
    problem = FlatProblem(rule.rhs, t0, ts)
    solver = rule.solver

    def run(length, algorithm, forward=None):
        if forward is None:
            forward = algorithm.forward(problem, solver, theta, y0, options, saved_steps=length)
        back = algorithm.backward(problem, solver, theta, y0, options, forward, g_ys, saved_steps=length)
        full = forward.buffer_full | back.buffer_full
        return (back.g_theta, back.g_y0, (back.status != ReturnCode.Success) | full), full

    if fwd is not None:
        g_theta, g_y0, failed = run(rule.saved_steps, rule.algorithm, fwd)[0]
    else:
        g_theta, g_y0, failed = ladder(run, branches(rule.algorithm, rule.record_lengths))
    failed = failed | (status != ReturnCode.Success)
    nan = lambda x: jnp.where(failed, jnp.nan, x)
    zeros = lambda x: jax.tree_util.tree_map(jnp.zeros_like, x)
    return nan(g_theta), nan(g_y0), zeros(t0), zeros(ts), zeros(options)


_adjoint.defvjp(_adjoint_fwd, _adjoint_bwd, symbolic_zeros=True)


# ------------------------------------------------------------------ record lengths that follow the solve


def branches(algorithm: AbstractSensitivity, lengths: tuple[int, ...]) -> tuple[tuple[int, AbstractSensitivity], ...]:
    """``(record length, algorithm)`` of each branch of a compiled program that holds the record ``lengths``.

    Every branch is compiled and XLA plans memory for all of them, though only the first runs
    unless a solve fills its records (:func:`ladder`). So the last of several lengths (``max_steps``)
    runs the algorithm with checkpoints, one every ``lengths[0]`` steps or fewer
    (:meth:`~pystiffsens.sensitivity.base.AbstractSensitivity.checkpointed`): no branch then holds
    ``max_steps`` records. With ``max_steps`` 1e5, an unused branch of 1e5 records made batches of
    8 ROBER gradients up to 1.20x slower than with ``max_steps`` 1e3 (benchmarks/README.md, section 3).
    """
    if len(lengths) == 1:
        return ((lengths[0], algorithm),)
    return (*((length, algorithm) for length in lengths[:-1]),
            (lengths[-1], algorithm.checkpointed(-(-lengths[-1] // lengths[0]))))


def ladder(run: Callable[[int, AbstractSensitivity], tuple[Any, Any]],
           branches: tuple[tuple[int, AbstractSensitivity], ...]):
    """``run(length, algorithm)`` for the first of ``branches`` whose records hold the solve.

    ``run`` returns ``(result, full)``; while ``full`` (any lane of a batch) the next branch
    runs instead (``lax.cond`` with an unbatched predicate, so under ``vmap`` only the
    branches some lane needs run). The last branch's result is returned whatever it says.
    """
    result, full = run(*branches[0])
    if len(branches) == 1:
        return result
    return lax.cond(any_lane(jnp.any(full)), lambda: ladder(run, branches[1:]), lambda: result)
