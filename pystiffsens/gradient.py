"""``pss.gradient`` and ``pss.make_gradient_fn``: loss and parameter gradient of a problem."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from . import _validation, device as _device, sensitivity as _sensitivity
from .results import GradientResult
from .returncode import ReturnCode
from .sensitivity.base import FlatProblem, Settings
from .solve import BACKENDS, check_options


def make_gradient_fn(problem, solver="Rodas5P", sensitivity="ForwardDiffSensitivity", *, rtol=1e-6, atol=1e-8, dt=None, max_steps=100_000):
    """A pure JAX function ``params -> {"loss", "grad", "status", "stats"}``.

    jit- and vmap-able: a stiffness grid runs as one batched computation with
    ``jax.vmap(lambda s: f(problem.set_stiffness(problem.params, s)))``. When the solve
    fails, ``loss`` and every gradient entry are NaN and ``status`` is the ReturnCode.
    """
    solver_obj = check_options(problem, solver, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps)
    return _build(problem, solver_obj, _sensitivity.get(sensitivity), Settings(rtol, atol, dt, max_steps))


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
        failed = out.status != ReturnCode.Success
        grad = jnp.where(failed, jnp.nan, out.grad)
        return {
            "loss": jnp.where(failed, jnp.nan, out.loss),
            "grad": unravel(grad),
            "status": out.status.astype(jnp.int32),
            "stats": {k: jnp.asarray(v, jnp.int32) for k, v in out.stats.items()},
        }

    return gradient_fn


_COMPILED: dict = {}


def _compiled(problem, solver_obj, algorithm, dt_given, max_steps):
    """One jitted gradient function per problem structure, solver, algorithm and step mode."""
    key = (problem.structure_key, solver_obj.name, repr(algorithm), dt_given, max_steps)
    if key in _COMPILED:
        return _COMPILED[key]

    def run(params, rtol, atol, dt):
        settings = Settings(rtol, atol, dt if dt_given else None, max_steps)
        return _build(problem, solver_obj, algorithm, settings)(params)

    _COMPILED[key] = jax.jit(run)
    return _COMPILED[key]


def gradient(
    problem,
    solver: str = "Rodas5P",
    sensitivity: str = "ForwardDiffSensitivity",
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    max_steps: int = 100_000,
    device: str = "cpu",
    backend: str = "jax",
) -> GradientResult:
    """Loss and gradient of ``problem.loss`` with respect to every parameter.

    Parameters
    ----------
    sensitivity : one of ``pss.sensitivity.names()`` or an alias (``"forward"``,
        ``"adjoint"``); on ``backend="julia"`` also ``QuadratureAdjoint``, ``ZygoteAdjoint``.
    Other parameters as :func:`pystiffsens.solve`.

    Returns
    -------
    :class:`~pystiffsens.results.GradientResult`; on failure ``status`` says why and the
    loss and gradients are NaN. Parameters the loss does not depend on get 0.
    """
    backend = _validation.choose("backend", backend, BACKENDS)
    if backend == "julia":
        from . import julia_backend

        return julia_backend.gradient(
            problem, solver, sensitivity, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps, device=device
        )
    solver_obj = check_options(problem, solver, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps)
    algorithm = _sensitivity.get(sensitivity)
    dev = _device.resolve(device)
    run = _compiled(problem, solver_obj, algorithm, dt is not None, max_steps)
    with jax.default_device(dev):
        out = jax.device_get(run(problem.params, rtol, atol, 0.0 if dt is None else dt))
    result = GradientResult.from_output(out, solver=solver_obj.name, sensitivity=algorithm.name, device=device)
    if not result.success and algorithm.failure_warning:
        warnings.warn(algorithm.failure_warning.format(status=result.status.name), RuntimeWarning, stacklevel=2)
    return result
