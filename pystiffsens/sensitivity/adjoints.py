"""The continuous adjoints: BacksolveAdjoint, InterpolatingAdjoint and GaussAdjoint.

They differ only in where the backward pass gets the state ``y(t)`` and how it integrates
``int lambda^T df/dp dt``; the backward segments are shared (:mod:`.continuous_adjoint`).
BacksolveAdjoint and InterpolatingAdjoint carry the integral ``mu`` as a quadrature of the
backward solve (:class:`~pystiffsens.solvers.partitioned.QuadratureRHS`): the implicit
system has the size of ``lambda`` (``(y, lambda)`` for BacksolveAdjoint), and each stage
adds one vector-Jacobian product, whatever the number of parameters.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..integrate import checkpoint_interval, dense_eval, integrate
from ..lanes import while_any
from ..problem import SparseRHS, sparsity_of
from ..returncode import ReturnCode
from ..solvers.base import scaled_rms
from ..solvers.partitioned import QuadratureRHS
from .base import (
    STEP_VECTORS,
    WORD,
    AbstractSensitivity,
    BackwardPass,
    ForwardPass,
    checkpoints_bytes,
    checkpoints_option,
    combine_status,
    records_bytes,
    saved_ys_bytes,
    step_bytes,
)
from .continuous_adjoint import along_forward, backward_segments, vjp_rhs, vjp_state

#: Largest accepted mismatch, in units of the error weights ``atol + rtol |y|``, between the
#: state BacksolveAdjoint reconstructs backward and the forward solution at saved times and t0,
#: on top of one weight per step of the two solves: on a stable problem the global error is at
#: most the sum of the local errors (Hairer, Nørsett & Wanner I, Sect. II.3), about one weight a
#: step, and low-order methods at tight tolerances take thousands of steps (Rosenbrock23 on
#: linear_modes, lam = 2, rtol 1e-9: 686 + 936 steps and a mismatch above 100 weights).
RECONSTRUCTION_TOLERANCE = 100.0
#: With fixed steps the tolerances do not govern the error, so the mismatch is measured
#: relative to the state instead: at most this fraction of ``atol + |y|``.
FIXED_STEP_RECONSTRUCTION_TOLERANCE = 1e-2


def _work(s) -> int:
    """Two steps' working memory, the parameter-sized vectors and the saved states."""
    return 2 * step_bytes(s.n) + WORD * s.P * STEP_VECTORS // 4 + saved_ys_bytes(s)


def _recording_forward(problem, solver, theta, y0, options, saved_steps, record_states, checkpoints):
    """The forward solve that keeps what the interpolating adjoints read ``y(t)`` from: its dense output at every
    step, or ``checkpoints`` snapshots to recompute it from (:func:`.continuous_adjoint.along_forward`)."""
    traj = integrate(problem.rhs, solver, y0, theta, t0=problem.t0, stops=problem.stops, options=options,
                     saved_steps=saved_steps, record_dense=checkpoints is None, record_states=record_states,
                     checkpoints=checkpoints)
    return ForwardPass(traj.ys, traj.status, traj.stats, traj.buffer_full, traj, traj)


def _dense_memory(s, checkpoints) -> dict[str, int]:
    """Bytes of what :func:`_recording_forward` keeps."""
    if checkpoints is None:
        return {"dense output": records_bytes(s.dense, s.saved_steps)}
    return {"checkpoints": checkpoints_bytes(checkpoints, s.state),
            "segment": records_bytes(s.dense, checkpoint_interval(s.saved_steps, checkpoints))}


def _add_jump(g_ys, lo, hi):
    """The jump ``lambda += dL/dy(t_k)`` on components ``lo:hi`` of the backward state."""
    return lambda z, k: z.at[lo:hi].add(g_ys[k])


def _adjoint_sparsity(rhs):
    """The pattern of ``d(-J^T lambda)/d lambda = -J^T``, where the forward right-hand side carries one."""
    pattern = sparsity_of(rhs)
    return pattern.T if pattern is not None else None


def _check_flag(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be True or False.")
    return value


class BacksolveAdjoint(AbstractSensitivity):
    """Continuous adjoint with the state re-integrated backward alongside the adjoint.

    Solves ``(y, lambda, mu)`` backward from the final time using only the final state.
    Memory is constant, but integrating ``y`` backward runs a stiff system in its
    unstable direction: on stiff problems the reconstructed state departs from the
    forward solution and the gradient is meaningless. pystiffsens therefore compares the
    backward state with the forward one at every saved time and at ``t0``; a mismatch
    larger than :data:`RECONSTRUCTION_TOLERANCE` error weights (with fixed steps:
    :data:`FIXED_STEP_RECONSTRUCTION_TOLERANCE` relative) gives status ``Unstable`` and
    NaN gradients (``pss.gradient`` also warns). Use it only for non-stiff problems;
    prefer :class:`InterpolatingAdjoint`, :class:`GaussAdjoint` or ``ReverseDiffAdjoint``.
    The implicit backward system is ``(y, lambda)`` (size 2n); ``mu`` is a quadrature.

    Parameters
    ----------
    quadrature_error_control : include ``mu`` in the backward local error test (CVODES's
        ``errconQ``). True by default, as SciMLSensitivity error-controls ``mu``: without it
        the gradient error does not fall with the tolerance (linear_modes, lam = 50,
        Rodas5P: relative error 9.9e-2 at rtol 1e-6 against 1.6e-6 with it). ``mu`` never
        enters the implicit system either way; this only lets its integrand shorten the
        backward steps.
    """

    name = "BacksolveAdjoint"
    backward_solve = True
    failure_warning = (
        "BacksolveAdjoint failed with status {status}: integrating the state backward is unstable on "
        "stiff problems (the reconstruction diverges or the backward solve fails), so the gradient is "
        "NaN. Use InterpolatingAdjoint, GaussAdjoint or ReverseDiffAdjoint instead."
    )

    def __init__(self, quadrature_error_control: bool = True):
        self.quadrature_error_control = _check_flag("quadrature_error_control", quadrature_error_control)

    def forward(self, problem, solver, theta, y0, options, *, saved_steps, wrt_y0=False, record_states=False):
        traj = integrate(problem.rhs, solver, y0, theta, t0=problem.t0, stops=problem.stops, options=options,
                         saved_steps=saved_steps, record_states=record_states)
        return ForwardPass(traj.ys, traj.status, traj.stats, traj.buffer_full, traj.ys, traj)

    def backward(self, problem, solver, theta, y0, options, fwd, g_ys, *, saved_steps):
        ys = fwd.residual
        n, P = y0.shape[0], theta.shape[0]

        def backward_fn(t, a, th):
            y, lam = a[:n], a[n:]
            JT_lam, fpT_lam = vjp_rhs(problem.rhs, t, y, th, lam)
            return jnp.concatenate([problem.rhs(t, y, th), -JT_lam]), -fpT_lam

        def backward_implicit(t, a, th):
            y, lam = a[:n], a[n:]
            return jnp.concatenate([problem.rhs(t, y, th), -vjp_state(problem.rhs, t, y, th, lam)])

        adjoint_rhs = QuadratureRHS(backward_fn, 2 * n, self.quadrature_error_control, implicit=backward_implicit)

        # The forward state at each segment's lower end, latest segment first.
        references = jnp.concatenate([y0[None], ys[:-1]])[::-1]

        def check(traj, z_end, carry):
            worst, segment = carry[0], carry[1].astype(jnp.int32)
            reference = references[segment]
            if options.dt is None:  # in error weights, judged below against the steps taken
                err = scaled_rms(z_end[:n] - reference, options.atol + options.rtol * jnp.abs(reference))
            else:
                err = scaled_rms(z_end[:n] - reference, options.atol + jnp.abs(reference))
                err = err / FIXED_STEP_RECONSTRUCTION_TOLERANCE
            return jnp.stack([jnp.maximum(worst, jnp.where(jnp.isfinite(err), err, jnp.inf)), carry[1] + 1.0])

        z_final = jnp.concatenate([ys[-1], g_ys[-1], jnp.zeros(P)])
        z0, status, stats, (worst, _), _ = backward_segments(
            problem, solver, theta, options, adjoint_rhs, z_final, _add_jump(g_ys, n, 2 * n),
            per_segment=check, extra0=jnp.zeros(2),
        )
        if options.dt is None:
            worst = worst / (RECONSTRUCTION_TOLERANCE + fwd.stats["n_steps"] + stats["n_steps"])
        diverged = jnp.where(worst > 1.0, ReturnCode.Unstable, ReturnCode.Success)
        return BackwardPass(z0[2 * n :], z0[n : 2 * n], combine_status(status, diverged), stats)

    def memory(self, s):
        return {"steps": step_bytes(2 * s.n) + WORD * s.P * STEP_VECTORS // 4 + saved_ys_bytes(s)}


class InterpolatingAdjoint(AbstractSensitivity):
    """Continuous adjoint reading the state from the forward solve's dense output.

    The forward solve stores its dense output (each solver's own interpolant: the
    stiff-aware Rosenbrock interpolants, ESDIRK dense output, the BDF interpolating
    polynomial); the backward solve integrates ``(lambda, mu)`` with ``y(t)`` interpolated,
    so nothing is integrated in an unstable direction. Memory grows with the number of
    forward steps (the whole dense output is kept), unless ``checkpoints`` bounds it. Converges to the
    exact ODE gradient as the tolerances tighten. This is the ``"adjoint"`` alias.

    ``mu`` is a quadrature of the backward solve: the implicit system is ``lambda`` alone
    (n x n Jacobians and LU factorisations) and each stage adds one vector-Jacobian
    product of ``f`` in ``p`` (plus, for Rosenbrock methods, one Jacobian-vector product
    of it), so the cost per step does not grow with the number of parameters beyond that.
    SciMLSensitivity's InterpolatingAdjoint instead integrates ``mu`` as ordinary states
    (its docs give ``O((n + p)^3)`` per factorisation for stiff solvers, and its default norm
    error-controls ``mu``, as pystiffsens does by default).

    Parameters
    ----------
    quadrature_error_control : include ``mu`` in the backward local error test (CVODES's
        ``errconQ``). True by default, as SciMLSensitivity error-controls ``mu``: without it
        the gradient error does not fall with the tolerance (linear_modes, lam = 50,
        Rodas5P: relative error 9.9e-2 at rtol 1e-6 against 1.6e-6 with it). ``mu`` never
        enters the implicit system either way; this only lets its integrand shorten the
        backward steps.
    checkpoints : ``None`` (default) keeps the dense output of every accepted step: memory
        ``max_saved_steps`` steps of it. An integer ``C`` bounds the memory instead: the forward
        solve keeps ``C`` snapshots, one every ``L = ceil(max_saved_steps / C)`` accepted steps,
        and the backward solve recomputes the dense output of one segment of ``L`` steps at a
        time from its snapshot, stepping onto the segment's lower end
        (:func:`.continuous_adjoint.along_forward`). Memory is about ``C`` solver states and ``L``
        steps of dense output, for one more forward solve; the gradient agrees with the one
        without checkpoints to the tolerances. The long branch of a compiled program
        (``pss.make_gradient_fn``, ``jax.grad`` through ``pss.solve``) runs this way, so that its
        memory does not grow with ``max_steps``.
    """

    name = "InterpolatingAdjoint"
    aliases = ("adjoint",)
    backward_solve = True
    records = "dense"

    def __init__(self, quadrature_error_control: bool = True, checkpoints: int | None = None):
        self.quadrature_error_control = _check_flag("quadrature_error_control", quadrature_error_control)
        self.checkpoints = checkpoints_option(checkpoints)

    def forward(self, problem, solver, theta, y0, options, *, saved_steps, wrt_y0=False, record_states=False):
        return _recording_forward(problem, solver, theta, y0, options, saved_steps, record_states, self.checkpoints)

    def backward(self, problem, solver, theta, y0, options, fwd, g_ys, *, saved_steps):
        n, P = y0.shape[0], theta.shape[0]

        def backward_on(forward):
            def backward_fn(t, lam, th):
                y = dense_eval(solver, forward, t)
                JT_lam, fpT_lam = vjp_rhs(problem.rhs, t, y, th, lam)
                return -JT_lam, -fpT_lam

            def backward_implicit(t, lam, th):
                return -vjp_state(problem.rhs, t, dense_eval(solver, forward, t), th, lam)

            return QuadratureRHS(backward_fn, n, self.quadrature_error_control, implicit=backward_implicit,
                                 sparsity=_adjoint_sparsity(problem.rhs)), None

        z_final = jnp.concatenate([g_ys[-1], jnp.zeros(P)])
        z0, status, stats, _ = along_forward(problem, solver, theta, options, fwd.residual, backward_on, z_final,
                                             _add_jump(g_ys, 0, n))
        return BackwardPass(z0[n:], z0[:n], status, stats)

    def memory(self, s):
        return {"steps": _work(s), **_dense_memory(s, self.checkpoints)}


class GaussAdjoint(AbstractSensitivity):
    """Continuous adjoint with the parameter integral done by Gauss–Legendre quadrature.

    Only ``lambda`` (the state's size) is integrated backward, with ``y(t)`` from the
    forward dense output; ``int lambda^T df/dp dt`` is then summed with an ``n_points``
    Gauss–Legendre rule on every interval of the union of the forward and backward step
    grids, so both interpolants are smooth on each interval (``y`` may have layers the
    backward steps skip, ``lambda`` layers the forward steps skip, e.g. ROBER's
    ``lambda`` near the final time), in the spirit of SciMLSensitivity's ``GaussAdjoint``.
    The rule is applied step by step as the backward solve goes (each backward step with
    its own dense output, split at the forward step boundaries inside it), so the backward
    solve records nothing: memory is the forward dense output, as for InterpolatingAdjoint.
    Cheaper than :class:`InterpolatingAdjoint` when there are many parameters, because the
    implicit backward solve does not carry them. The price: only ``lambda`` is
    error-controlled, so where the integrand is concentrated in a layer of a large
    ``lambda`` the gradient is less accurate than InterpolatingAdjoint's at the same
    tolerances (ROBER, rtol 1e-8: relative error 6e-6 against 2e-8; benchmarks/README.md).

    Parameters
    ----------
    n_points : Gauss–Legendre points per interval.
    checkpoints : as :class:`InterpolatingAdjoint`'s.
    """

    name = "GaussAdjoint"
    backward_solve = True
    records = "dense"

    def __init__(self, n_points: int = 4, checkpoints: int | None = None):
        if not (isinstance(n_points, int) and 1 <= n_points <= 20):
            raise ValueError(f"n_points={n_points!r} must be an integer in 1..20.")
        self.n_points = n_points
        self.checkpoints = checkpoints_option(checkpoints)

    def forward(self, problem, solver, theta, y0, options, *, saved_steps, wrt_y0=False, record_states=False):
        return _recording_forward(problem, solver, theta, y0, options, saved_steps, record_states, self.checkpoints)

    def backward(self, problem, solver, theta, y0, options, fwd, g_ys, *, saved_steps):
        n = y0.shape[0]
        nodes, weights = np.polynomial.legendre.leggauss(self.n_points)
        nodes, weights = (nodes + 1.0) / 2.0, weights / 2.0
        pattern = _adjoint_sparsity(problem.rhs)

        def backward_on(forward):
            def adjoint_rhs(t, lam, th):
                y = dense_eval(solver, forward, t)
                return -vjp_state(problem.rhs, t, y, th, lam)

            n_forward = forward.step_t.shape[0]
            forward_t = lambda i: jnp.where(i < n_forward, forward.step_t[jnp.minimum(i, n_forward - 1)], jnp.inf)

            def step_integral(step, accepted, t_hi):
                """The integral over one backward step, on the forward steps' grid inside it.

                The step runs from ``s0`` to ``s0 + h`` in the segment's reversed time ``s = t_hi - t``,
                i.e. over ``[t_hi - s0 - h, t_hi - s0]`` in ``t``, where ``lambda`` is the step's own
                dense output; the forward step boundaries inside it split it, so both interpolants are
                smooth on every piece.

                Pieces and nodes are placed by the step's own fraction ``u`` (``t = t_hi - s0 - u h``), so
                the weights add up to the ``h`` the backward solve stepped and ``lambda`` is read
                where its node is: a difference of times near a large ``t`` loses the digits a
                short step needs (``ulp(1e8)`` is 1.5e-8, 1.5 % of a 1e-6 step at the end of a
                preequilibration to ``t = 1e8``).
                """
                s0, h = step["t"], step["h"]
                b = t_hi - s0
                a = b - h
                h_safe = jnp.where(h > 0, h, 1.0)

                def piece(carry):
                    u_lo, i, acc = carry  # the piece runs from fraction u_lo (its lower end in t) down to u_hi
                    u_hi = jnp.clip((b - forward_t(i)) / h_safe, 0.0, u_lo)  # 0 past the step's upper end
                    width = u_lo - u_hi
                    for x, w in zip(nodes, weights):
                        u = u_hi + x * width
                        t = b - u * h
                        y = dense_eval(solver, forward, t)
                        lam = solver.interpolate(step["dense"], u)
                        acc = acc + (w * width * h) * vjp_rhs(problem.rhs, t, y, theta, lam)[1]
                    return u_hi, i + (u_hi > 0), acc

                first = jnp.searchsorted(forward.step_t, a, side="right")
                start = (jnp.where(accepted, 1.0, 0.0), first, jnp.zeros_like(theta))  # nothing to add when rejected
                return while_any(lambda c: c[0] > 0, piece, start)[2]

            rhs = adjoint_rhs if pattern is None else SparseRHS(adjoint_rhs, pattern)
            return rhs, (step_integral, jnp.zeros_like(theta))

        lam0, status, stats, integral = along_forward(
            problem, solver, theta, options, fwd.residual, backward_on, g_ys[-1], _add_jump(g_ys, 0, n),
            per_segment=lambda traj, z_end, total: total + traj.accumulated, extra0=jnp.zeros_like(theta),
        )
        return BackwardPass(integral, lam0, status, stats)

    def memory(self, s):
        return {"steps": _work(s), **_dense_memory(s, self.checkpoints)}
