"""The front door: ``pss.solve``, ``pss.gradient`` and ``pss.make_gradient_fn``.

Each resolves the user's arguments once (the problem, the backend, the solver and
sensitivity names, the :class:`~pystiffsens.options.Options`) and hands objects to the
backend (:mod:`pystiffsens.backends`). Nothing here depends on which backend runs.

``pss.solve`` and ``pss.gradient`` keep what they resolved, the backend's prepared call
(:meth:`~pystiffsens.backends.Backend.prepare_solve`), per set of arguments: a call that
repeats the arguments of a recent one, with the same problem object and new ``params`` or
``y0``, goes straight to it (:data:`KEPT` are kept). The key holds every argument the
resolution reads, and the memory limit's environment variable (which the automatic
sensitivity choice reads); a problem that holds traced values, arguments that cannot key
a dictionary (array tolerances) and ``saveat`` (which makes a new problem) are resolved
on every call.
"""

from __future__ import annotations

import functools
import os

import jax.numpy as jnp

from . import _params, _warnings, _x64, backends, memory, problems, programs
from .backends.native import inputs
from .options import Options
from .problem import Problem
from .results import GradientResult, Solution
from .sensitivity.rules import branches


def resolve_problem(problem) -> Problem:
    """A :class:`Problem`, or the built-in problem of that name."""
    if isinstance(problem, str):
        return problems.get(problem)
    if not isinstance(problem, Problem):
        raise ValueError(f"problem={problem!r} must be a pss.Problem or one of {problems.names()}.")
    return problem


#: Prepared calls kept, the oldest dropped first.
KEPT = 256
_PREPARED: dict = {}


def _prepared(key, problem, prepare):
    """The call kept for ``key`` if prepared for ``problem`` itself; else ``prepare()``'s, kept where it can be."""
    if key is None or not (isinstance(problem, str) or isinstance(problem, Problem) and not problem.traced):
        return prepare()
    try:
        entry = _PREPARED.get(key)
    except TypeError:  # unhashable arguments
        return prepare()
    if entry is not None and (isinstance(problem, str) or entry[0] is problem):
        return entry[1]
    call = prepare()
    if len(_PREPARED) >= KEPT:
        del _PREPARED[next(iter(_PREPARED))]
    _PREPARED[key] = (problem, call)
    return call


def _key(kind: str, problem, *arguments) -> tuple:
    """The key of a prepared call: ``problem`` (a name itself, a problem object by identity, checked on use), the
    arguments with their types (``1``, ``1.0`` and ``True`` are equal keys, not equally valid arguments), and the
    memory limit's environment variable."""
    return (kind, problem if isinstance(problem, str) else id(problem), arguments, tuple(map(type, arguments)),
            os.environ.get(memory.ENV_VAR))


@_x64.float64
def solve(
    problem,
    solver="Rodas5P",
    *,
    sensitivity=None,
    params=None,
    y0=None,
    saveat=None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    adaptive: bool | None = None,
    max_steps: int = 100_000,
    max_saved_steps: int | None = None,
    save_steps: bool | None = None,
    memory_limit=None,
    device: str = "cpu",
    backend="jax",
) -> Solution:
    """Solve ``problem`` with ``solver``: a differentiable JAX function of ``params`` and ``y0``.

    Parameters
    ----------
    problem : a :class:`~pystiffsens.Problem` or the name of a built-in problem (``pss.problems.names()``).
    solver : a name from ``pss.solvers.names()`` or a solver object.
    sensitivity : how ``jax.grad``/``jax.jvp`` differentiate this solve: a name from
        ``pss.sensitivity.names()`` (aliases ``"forward"``, ``"adjoint"``), an algorithm
        object, or None/``"auto"`` (forward mode for states + parameters <= 100, the
        discrete adjoint otherwise). Forward-mode algorithms support ``jax.jvp`` and
        ``jax.grad``; adjoints ``jax.grad``/``jax.vjp`` only.
    params, y0 : parameters (a pytree of the problem's structure) and initial state to use
        instead of the problem's own; pass traced values to differentiate.
    saveat : times to save at, in ``[t0, t1]`` (default: the problem's; may start at ``t0``).
    rtol, atol, dt, adaptive, max_steps, max_saved_steps : see :class:`~pystiffsens.options.Options`.
    save_steps : keep every accepted step in ``step_ts``/``step_ys`` (what
        ``pss.stiffness.stiffness_along_solution`` reads). Default: yes when called on
        concrete values (the records grow with the solve, :mod:`pystiffsens.memory`), no
        inside a JAX transformation.
    memory_limit : bytes or a size such as ``"8GB"`` (default ``$PYSTIFFSENS_MEMORY_LIMIT``,
        else half the physical memory); a ``ValueError`` is raised before a computation
        planned above it runs.
    device : ``"cpu"`` or ``"cuda"``.
    backend : ``"jax"`` (native; default) or ``"julia"`` (SciML through juliacall).

    Returns
    -------
    :class:`~pystiffsens.results.Solution`: NumPy arrays and a :class:`~pystiffsens.ReturnCode`
    on concrete inputs; JAX arrays inside a transformation (``jax.jit``, ``jax.vmap``,
    ``jax.grad``). A numerical failure is reported in ``status``, never raised; states
    past the failure are NaN, and so is any derivative through a failed solve.
    """
    def prepare():
        chosen = backends.get(backend)
        resolved = resolve_problem(problem)
        if saveat is not None:
            resolved = resolved.replace(saveat=saveat)
        method = chosen.solver(solver)
        options = _options(resolved, method, rtol, atol, dt, adaptive, max_steps, max_saved_steps)
        choice = sensitivity
        if not (sensitivity is None or isinstance(sensitivity, str) and sensitivity.lower() == "auto"):
            choice = backends.sensitivity(chosen, sensitivity, resolved, method, options, device=device)
        chosen.check(resolved, method, None, options, device)
        return chosen.prepare_solve(resolved, method, options, sensitivity=choice, save_steps=save_steps,
                                    device=device, memory_limit=memory_limit)

    key = None if saveat is not None else _key("solve", problem, solver, sensitivity, rtol, atol, dt, adaptive,
                                                max_steps, max_saved_steps, save_steps, memory_limit, device, backend)
    return _prepared(key, problem, prepare)(params, y0)


@_x64.float64
def gradient(
    problem,
    solver="Rodas5P",
    sensitivity=None,
    *,
    params=None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    adaptive: bool | None = None,
    max_steps: int = 100_000,
    max_saved_steps: int | None = None,
    memory_limit=None,
    device: str = "cpu",
    backend="jax",
) -> GradientResult:
    """Loss and gradient of ``problem.loss`` with respect to every parameter.

    Parameters
    ----------
    problem : a :class:`~pystiffsens.Problem` or the name of a built-in problem (``pss.problems.names()``).
    sensitivity : a name from ``pss.sensitivity.names()``, an alias (``"forward"``,
        ``"adjoint"``), an algorithm object (e.g. ``ReverseDiffAdjoint(checkpoints=100)``),
        or None/``"auto"`` (default): the backend's choice (``result.sensitivity``;
        ``result.extra["sensitivity_choice"]`` says by which rule). On ``backend="julia"``
        also ``QuadratureAdjoint``, ``ZygoteAdjoint``.
    params : parameters to use instead of the problem's own (same structure).
    max_saved_steps : length of the per-step records of the algorithms that record a
        solve (ReverseDiffAdjoint, InterpolatingAdjoint, GaussAdjoint). By default (None)
        they are sized to the solve: they start at
        :func:`pystiffsens.memory.first_saved_steps` entries and the gradient is recomputed
        with :data:`pystiffsens.memory.GROWTH` times longer ones whenever they fill, up to
        ``max_steps``. With an integer, a solve that needs more accepted steps stops with
        ``MaxIters``.
    memory_limit : bytes or a size such as ``"8GB"`` (default: ``$PYSTIFFSENS_MEMORY_LIMIT``,
        else half the physical memory). When the planned memory exceeds it, a ``ValueError``
        naming the size and the algorithms that fit is raised before anything runs.
    Other parameters as :func:`solve`.

    Returns
    -------
    :class:`~pystiffsens.results.GradientResult`; on failure ``status`` says why and the
    loss and gradients are NaN (a non-finite loss or gradient gives ``Unstable``).
    Parameters the loss does not depend on get 0. The same numbers as ``jax.grad`` of the
    loss through :func:`solve` with the same ``sensitivity``.
    """
    def prepare():
        chosen = backends.get(backend)
        resolved = resolve_problem(problem)
        method = chosen.solver(solver)
        options = _options(resolved, method, rtol, atol, dt, adaptive, max_steps, max_saved_steps)
        choice = backends.sensitivity(chosen, sensitivity, resolved, method, options, device=device,
                                      memory_limit=memory_limit)
        chosen.check(resolved, method, choice.algorithm, options, device)
        call = chosen.prepare_gradient(resolved, method, choice, options, device=device, memory_limit=memory_limit)
        warning = getattr(choice.algorithm, "failure_warning", None)
        if not warning:
            return call

        def warned(params=None):
            result = call(params)
            if not result.success:
                _warnings.warn(warning.format(status=result.status.name), RuntimeWarning)
            return result

        return warned

    key = _key("gradient", problem, solver, sensitivity, rtol, atol, dt, adaptive, max_steps, max_saved_steps,
               memory_limit, device, backend)
    return _prepared(key, problem, prepare)(params)


@_x64.float64
def make_gradient_fn(
    problem,
    solver="Rodas5P",
    sensitivity=None,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt: float | None = None,
    adaptive: bool | None = None,
    max_steps: int = 100_000,
    max_saved_steps: int | None = None,
    memory_limit=None,
    batch_size: int = 1,
):
    """A pure JAX function ``params -> {"loss", "grad", "status", "stats", "buffer_full"}`` (native backend).

    jit- and vmap-able: a stiffness grid runs as one batched computation with
    ``jax.vmap(lambda s: f(problem.set_stiffness(problem.params, s)))``. Compile it with
    :func:`pystiffsens.jit` (``jax.jit`` with the XLA options of pystiffsens's own calls,
    :mod:`pystiffsens._xla`); plain ``jax.jit`` works too, slower on CPU. When the solve
    fails (or the loss or gradient is not finite), ``loss`` and every gradient entry are
    NaN and ``status`` is the ReturnCode. ``sensitivity=None`` (or ``"auto"``) chooses as
    :meth:`pystiffsens.backends.JaxBackend.sensitivity`; the function's ``sensitivity``
    attribute names the choice.

    Step records follow the solve here too: with ``max_saved_steps=None`` the program
    holds two record lengths (:func:`pystiffsens.memory.program_lengths`) and runs the
    longer one only when a solve filled the shorter (``lax.cond``); ``"buffer_full"`` is True
    only when the last length was full. The longer one (``max_steps``) runs the sensitivity
    with checkpoints (:func:`pystiffsens.sensitivity.rules.branches`), so neither the program's
    memory nor its time grows with ``max_steps``; a solve that needs it gets a gradient equal
    to ``pss.gradient``'s to the tolerances rather than to rounding (the continuous adjoints'
    backward solve then stops at each checkpoint). Raises ``ValueError`` at once when the
    estimated memory of ``batch_size`` lanes in either branch exceeds the limit
    (:mod:`pystiffsens.memory`). Other parameters as :func:`gradient`.
    """
    backend = backends.default()
    problem = resolve_problem(problem)
    solver = backend.solver(solver)
    options = _options(problem, solver, rtol, atol, dt, adaptive, max_steps, max_saved_steps)
    choice = backends.sensitivity(backend, sensitivity, problem, solver, options, memory_limit=memory_limit)
    algorithm = choice.algorithm
    inp = inputs(problem)
    spec = programs.Spec(problem.rhs, inp.structure, solver, algorithm, problem.loss_fn)
    lengths = backend.record_lengths(spec, inp, options, in_program=True)
    for length, branch in branches(algorithm, lengths):
        shapes = backend.programs.shapes(spec, inp, length)
        memory.check(branch, shapes, batch=batch_size, memory_limit=memory_limit)
    run = programs.gradient(spec, lengths)
    structure = inp.structure
    y0, t0, ts = inp.y0, inp.t0, inp.ts

    def gradient_fn(params):
        leaves = [jnp.asarray(leaf, jnp.float64) for leaf in structure.leaves_of(params)]
        out = run(leaves, y0, t0, ts, options)
        return {**out, "grad": _params.ordered_like(problem.params, structure.fill(out["grad"]))}

    gradient_fn.sensitivity = algorithm.name  # type: ignore[attr-defined]
    gradient_fn.algorithm = algorithm  # type: ignore[attr-defined]
    gradient_fn.shapes = shapes  # type: ignore[attr-defined]
    return gradient_fn


def _options(problem: Problem, solver, rtol, atol, dt, adaptive, max_steps, max_saved_steps) -> Options:
    """The validated options ``solver`` runs ``problem`` with (``dt`` None exactly for adaptive steps).

    Validated once per combination of values and their types (repeated calls with the same options reuse it;
    ``max_steps=1000.0`` is refused after ``max_steps=1000`` was accepted).
    """
    given = (solver, problem.tspan[1] - problem.tspan[0], rtol, atol, dt, adaptive, max_steps, max_saved_steps)
    try:
        return _options_for(*given)
    except TypeError:  # unhashable values (array tolerances): no reuse
        return _options_for.__wrapped__(*given)


@functools.lru_cache(maxsize=256, typed=True)
def _options_for(solver, t_span: float, rtol, atol, dt, adaptive, max_steps, max_saved_steps) -> Options:
    options = Options(rtol=rtol, atol=atol, dt=dt, adaptive=adaptive, max_steps=max_steps,
                      max_saved_steps=max_saved_steps).for_method(solver, t_span)
    if dt is not None and options.dt is None:
        raise ValueError(
            f"dt={dt!r} is not used: solver={solver.name!r} takes adaptive steps with adaptive=True. Drop dt, or "
            "pass adaptive=False for fixed steps of dt."
        )
    return options
