"""``pss.gradient`` and ``pss.make_gradient_fn``: loss and parameter gradient of a problem."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from . import _program_cache, _validation, _xla, memory, problems
from . import device as _device
from . import sensitivity as _sensitivity
from .results import GradientResult
from .returncode import ReturnCode
from .sensitivity.base import FlatProblem, Settings
from .solve import BACKENDS, check_options

#: Accepted spellings of "choose for me".
AUTO = (None, "auto")


def _flat_size(params) -> int:
    return int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params)))


def _shapes(problem, solver_obj, saved_steps):
    """Memory-relevant sizes of ``problem`` with ``solver_obj`` (by ``jax.eval_shape``; nothing runs)."""
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), problem.params)
    theta, unravel = ravel_pytree(params)
    rhs = problem.rhs
    return memory.shapes(lambda t, y, th: rhs(t, y, unravel(th)), solver_obj, problem.y0, theta,
                         len(problem.saveat), saved_steps)


def choose_sensitivity(problem, sensitivity, shapes=None, *, memory_limit=None, device=None):
    """The algorithm for ``sensitivity``, and the rule that chose it when it was ``None``/``"auto"``.

    The automatic choice follows SciMLSensitivity's ``automatic_sensealg_choice``
    (``src/concrete_solve.jl``): forward mode when states + parameters <= 100
    (:data:`~pystiffsens.sensitivity.FORWARD_MODE_LIMIT`), an adjoint otherwise. SciMLSensitivity's
    adjoint there is a continuous one (GaussAdjoint for ODEs) because its discrete adjoint
    is slow; here the discrete adjoint, ReverseDiffAdjoint, is the fastest adjoint and gives
    the same gradient as forward mode, so the automatic choice changes the cost, never the
    result. When its per-step records would not fit the memory limit, it is
    ``ReverseDiffAdjoint(checkpoints=ceil(sqrt(max_saved_steps)))``.
    """
    if not (sensitivity is None or (isinstance(sensitivity, str) and sensitivity == "auto")):
        return _sensitivity.get(sensitivity), None
    n, P = len(problem.y0), _flat_size(problem.params)
    if n + P <= _sensitivity.FORWARD_MODE_LIMIT:
        return _sensitivity.ForwardDiffSensitivity(), f"auto: {n} states + {P} parameters <= {_sensitivity.FORWARD_MODE_LIMIT}"
    algorithm = _sensitivity.ReverseDiffAdjoint()
    rule = f"auto: {n} states + {P} parameters > {_sensitivity.FORWARD_MODE_LIMIT}"
    if shapes is not None:
        budget, _ = memory.limit(memory_limit, device)
        if memory.total(algorithm, shapes) > budget:
            algorithm = _sensitivity.ReverseDiffAdjoint(checkpoints=memory.suggested_checkpoints(shapes.saved_steps))
            rule += ", per-step records over the memory limit"
    return algorithm, rule


def make_gradient_fn(
    problem, solver="Rodas5P", sensitivity=None, *, rtol=1e-6, atol=1e-8, dt=None, max_steps=100_000,
    max_saved_steps=None, memory_limit=None, batch_size=1,
):
    """A pure JAX function ``params -> {"loss", "grad", "status", "stats"}``.

    jit- and vmap-able: a stiffness grid runs as one batched computation with
    ``jax.vmap(lambda s: f(problem.set_stiffness(problem.params, s)))``. Compile it with
    :func:`pystiffsens.jit` (``jax.jit`` with the XLA options of pystiffsens's own calls,
    :mod:`pystiffsens._xla`); plain ``jax.jit`` works too, slower on CPU. When the solve
    fails (or the loss or gradient is not finite), ``loss`` and every gradient entry are
    NaN and ``status`` is the ReturnCode. ``sensitivity=None`` (or ``"auto"``) chooses as
    :func:`choose_sensitivity`; the function's ``sensitivity`` attribute names the choice.
    ``max_saved_steps=None`` means ``max_steps`` here (the function cannot rerun itself);
    the output's ``"buffer_full"`` is True when a recording solve stopped (``MaxIters``)
    because its step buffers were full, so a larger ``max_saved_steps`` would let it finish.
    Raises ``ValueError`` at once when the estimated memory of ``batch_size`` lanes exceeds
    the limit (:mod:`pystiffsens.memory`). Other parameters as :func:`gradient`.
    """
    solver_obj = check_options(problem, solver, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps)
    saved = _check_saved_steps(max_saved_steps, max_steps)
    shapes = _shapes(problem, solver_obj, saved)
    algorithm, _ = choose_sensitivity(problem, sensitivity, shapes, memory_limit=memory_limit)
    memory.check(algorithm, shapes, batch=batch_size, memory_limit=memory_limit)
    fn = _build(problem, solver_obj, algorithm, Settings(rtol, atol, dt, max_steps, max_saved_steps))
    fn.sensitivity, fn.algorithm, fn.shapes = algorithm.name, algorithm, shapes
    return fn


def plan(problem, solver_obj, sensitivity, *, max_steps, max_saved_steps, dt, memory_limit=None, device=None):
    """``(algorithm, rule, shapes, first buffer length)`` of a gradient whose buffers may grow.

    The algorithm is chosen (:func:`choose_sensitivity`) for the longest buffers the growth
    can reach (``max_steps``, or ``max_saved_steps`` when given), whose sizes ``shapes``
    holds. The first buffer length is ``max_saved_steps`` when given, else
    :func:`pystiffsens.memory.first_saved_steps`.
    """
    largest = _shapes(problem, solver_obj, _check_saved_steps(max_saved_steps, max_steps))
    algorithm, rule = choose_sensitivity(problem, sensitivity, largest, memory_limit=memory_limit, device=device)
    if max_saved_steps is not None:
        return algorithm, rule, largest, largest.saved_steps
    t0, t1 = problem.tspan
    first = memory.first_saved_steps(max_steps, max(largest.state, largest.dense), t_span=float(t1 - t0), dt=dt,
                                     n_stops=len(problem.saveat))
    return algorithm, rule, largest, first


def _check_saved_steps(max_saved_steps, max_steps) -> int:
    if max_saved_steps is None:
        return max_steps
    if isinstance(max_saved_steps, bool) or not isinstance(max_saved_steps, (int, np.integer)) or max_saved_steps < 1:
        raise ValueError(f"max_saved_steps={max_saved_steps!r} must be None (= max_steps) or a positive integer.")
    return int(max_saved_steps)


def _build(problem, solver_obj, algorithm, settings):
    """``make_gradient_fn`` after validation (tolerances and ``dt`` may be traced here)."""
    stops = jnp.asarray(problem.saveat)
    y0 = jnp.asarray(problem.y0)
    rhs, loss_fn, t0 = problem.rhs, problem.loss_fn, problem.tspan[0]

    def gradient_fn(params):
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
        theta, unravel = ravel_pytree(params)
        flat = FlatProblem(
            rhs=lambda t, y, th: rhs(t, y, unravel(th)),
            loss=lambda ys, th: loss_fn(stops, ys, unravel(th)),
            y0=y0,
            t0=t0,
            stops=stops,
        )
        out = algorithm.compute(flat, solver_obj, theta, settings)
        # A solve that succeeded but produced a non-finite loss or gradient is no success.
        finite = jnp.isfinite(out.loss) & jnp.all(jnp.isfinite(out.grad))
        status = jnp.where((out.status == ReturnCode.Success) & ~finite, ReturnCode.Unstable, out.status)
        failed = status != ReturnCode.Success
        return {
            "loss": jnp.where(failed, jnp.nan, out.loss),
            "grad": unravel(jnp.where(failed, jnp.nan, out.grad)),
            "status": status.astype(jnp.int32),
            "stats": {k: jnp.asarray(v, jnp.int32) for k, v in out.stats.items()},
            "buffer_full": jnp.asarray(out.buffer_full),
        }

    return gradient_fn


_COMPILED: dict = {}


def _compiled(problem, solver_obj, algorithm, dt_given, max_steps, max_saved_steps, args, device):
    """One compiled gradient per problem structure, solver, algorithm, step mode, argument shapes and device.

    Kept in memory for the process and, for built-in problems, traced once per machine
    (:mod:`pystiffsens._program_cache`).
    """
    signature = jax.tree_util.tree_map(lambda x: (jnp.shape(x), jnp.result_type(x)), args[0])
    key = (problem.structure_key, solver_obj.name, repr(algorithm), dt_given, max_steps, max_saved_steps,
           str(signature), str(device))
    if key not in _COMPILED:
        def run(params, rtol, atol, dt):
            settings = Settings(rtol, atol, dt if dt_given else None, max_steps, max_saved_steps)
            return _build(problem, solver_obj, algorithm, settings)(params)

        # The parameter values are arguments of the program, so the problem's structure is its part of the key.
        identity = ("gradient", problem.structure_key, solver_obj, algorithm, dt_given, max_steps, max_saved_steps)
        _COMPILED[key] = _program_cache.compile_cached(_xla.jit(run), args, identity, device)
    return _COMPILED[key]


def gradient(
    problem,
    solver: str = "Rodas5P",
    sensitivity: str | None = None,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 100_000,
    max_saved_steps: int | None = None,
    memory_limit=None,
    device: str = "cpu",
    backend: str = "jax",
) -> GradientResult:
    """Loss and gradient of ``problem.loss`` with respect to every parameter.

    Parameters
    ----------
    problem : a :class:`~pystiffsens.Problem` or the name of a built-in problem (``pss.problems.names()``).
    sensitivity : one of ``pss.sensitivity.names()``, an alias (``"forward"``,
        ``"adjoint"``), an algorithm object (e.g. ``ReverseDiffAdjoint(checkpoints=100)``), or
        ``None``/``"auto"`` (default): forward mode for states + parameters <= 100, the
        discrete adjoint otherwise (:func:`choose_sensitivity`; the choice is
        ``result.sensitivity``). On ``backend="julia"`` also ``QuadratureAdjoint``, ``ZygoteAdjoint``.
    max_saved_steps : length of the per-step buffers of the algorithms that record a
        solve (ReverseDiffAdjoint, InterpolatingAdjoint, GaussAdjoint). By default (None)
        they are sized to the solve: they start at
        :func:`pystiffsens.memory.first_saved_steps` entries and the gradient is recomputed
        with :data:`pystiffsens.memory.GROWTH` times longer ones whenever they fill, up to
        ``max_steps``. With an integer, a solve that needs more accepted steps stops with
        ``MaxIters``.
    memory_limit : bytes or a size such as ``"8GB"`` (default: ``$PYSTIFFSENS_MEMORY_LIMIT``,
        else half the physical memory). When the planned memory exceeds it, a ``ValueError``
        naming the size and the algorithms that fit is raised before anything runs.
    Other parameters as :func:`pystiffsens.solve`.

    Returns
    -------
    :class:`~pystiffsens.results.GradientResult`; on failure ``status`` says why and the
    loss and gradients are NaN (a non-finite loss or gradient gives ``Unstable``).
    Parameters the loss does not depend on get 0.
    """
    backend = _validation.choose("backend", backend, BACKENDS)
    problem = problems.get(problem) if isinstance(problem, str) else problem
    if backend == "julia":
        from . import julia_backend

        algorithm, _ = choose_sensitivity(problem, sensitivity) if sensitivity in AUTO else (None, None)
        return julia_backend.gradient(
            problem, solver, sensitivity if algorithm is None else algorithm.name,
            rtol=rtol, atol=atol, dt=dt, max_steps=max_steps, device=device,
        )
    solver_obj = check_options(problem, solver, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps)
    dev = _device.resolve(device)
    algorithm, rule, largest, first = plan(problem, solver_obj, sensitivity, max_steps=max_steps,
                                           max_saved_steps=max_saved_steps, dt=dt, memory_limit=memory_limit,
                                           device=dev)
    lengths = memory.saved_step_lengths(first, max_steps) if max_saved_steps is None else (first,)
    args = (problem.params, np.float64(rtol), np.float64(atol), np.float64(0.0 if dt is None else dt))
    for saved in lengths:
        shapes = dataclasses.replace(largest, saved_steps=saved)
        memory.check(algorithm, shapes, memory_limit=memory_limit, device=dev)
        with jax.default_device(dev):
            compiled = _compiled(problem, solver_obj, algorithm, dt is not None, max_steps, saved, args, dev)
            memory.check_compiled(compiled, algorithm, shapes, memory_limit=memory_limit, device=dev)
            out = jax.device_get(compiled(*args))
        if not out["buffer_full"]:
            break
    result = GradientResult.from_output(out, solver=solver_obj.name, sensitivity=algorithm.name, device=device)
    if rule is not None:
        result.extra["sensitivity_choice"] = rule
    if not result.success and algorithm.failure_warning:
        warnings.warn(algorithm.failure_warning.format(status=result.status.name), RuntimeWarning, stacklevel=2)
    return result
