"""The contract every pystiffsens solver implements.

A solver is a pure, stateless description of a method. The integrator (``integrate.py``)
owns the loop, step-size control, status and bookkeeping; a solver owns the maths of one
step. Everything here is a pure function of its inputs, so the same step can be taken in
a forward solve, differentiated in forward or reverse mode, or replayed by the discrete
adjoint with the step sizes and orders of the forward solve held fixed.

Implementers provide:

1. ``init(fn, t0, y0, args, h0) -> state``: the solver state at ``t0`` (a pytree whose
   ``y`` field is the current solution; multistep methods add their history).
2. ``attempt(fn, t, h, state, args, tol) -> Attempt``: one step of size ``h``.
3. ``y_of(state)``: the solution held in a state.
4. ``interpolate(dense, theta)``: the dense output on the step, ``theta`` in [0, 1].
5. Optionally ``accept``/``reject`` to own the step-size (and order) choice; the default
   is the elementary controller of Hairer & Wanner II, Sect. IV.8.
6. ``control_fields``: names of state fields that are discrete controls (orders, the step
   a history is scaled to). They are not differentiated, and the discrete adjoint takes
   them from the recorded forward solve.
7. ``stability()``: the method's stability function, derived from its coefficients
   (:mod:`pystiffsens.solvers.stability`).

``tol`` is the :class:`~pystiffsens.options.Options` of the solve (its ``rtol`` and ``atol``).

A solver object also carries the facts the rest of the package asks of a method (one place
for each): ``name`` and ``aliases`` (how the catalog finds it), ``adaptive`` (whether it has
an error estimate), and its counterparts on the Julia backend, ``julia`` (the OrdinaryDiffEq
algorithm) and ``julia_gpu`` (the DiffEqGPU kernel), None where there is none.
"""

from __future__ import annotations

import abc
import functools
from typing import Any, NamedTuple

import jax.numpy as jnp

from .stability import OneStepStability

SAFETY = 0.9
MIN_FACTOR = 0.2
MAX_FACTOR = 6.0


def weighted_sum(weights, vectors):
    """``sum_i weights[i] * vectors[i]``, term by term over the nonzero ``weights``.

    ``weights`` are tableau data (skipped where zero) or traced values; ``vectors`` is a
    sequence of stage vectors, never stacked into a matrix. Why: XLA:CPU runs a step's
    operations one after another only while every operation touches at most 512 bytes
    (:data:`pystiffsens.integrate.SEQUENTIAL_BUFFER_BYTES`), and otherwise pays concurrent
    scheduling on each of them. A stack of stages carried with forward-mode tangents holds
    parameters x stages x states values: 576 bytes for Rodas5P's 8 stages on ROBER with its
    3 parameters, enough to tip the whole step loop over (benchmarks/README.md, section 6).
    Step outputs that hold several vectors (``Attempt.dense``) are tuples for the same reason.
    """
    terms = [w * v for w, v in zip(weights, vectors) if not (isinstance(w, (int, float)) and w == 0.0)]
    if not terms:
        return jnp.zeros_like(vectors[0])
    return functools.reduce(lambda a, b: a + b, terms)


class Attempt(NamedTuple):
    """The outcome of one attempted step.

    Attributes
    ----------
    state : the solver state after the step, were it accepted.
    error : local error estimate, same shape as ``y`` (zeros for methods without one).
    dense : pytree of dense-output coefficients for the step.
    converged : whether every implicit solve inside the step converged.
    n_f, n_jac, n_lu : work done (RHS evaluations, Jacobians, LU factorisations).
    """

    state: Any
    error: Any
    dense: Any
    converged: Any
    n_f: Any
    n_jac: Any
    n_lu: Any


class AbstractSolver(abc.ABC):
    """Base of every solver; see the module docstring for the contract and the facts it carries."""

    name: str
    order: int
    #: Whether the method has an embedded error estimate (adaptive steps).
    adaptive: bool
    control_fields: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    #: The OrdinaryDiffEq algorithm of the same method (Julia backend), None if there is none.
    julia: str | None = None
    #: The DiffEqGPU kernel of the same method (Julia backend, device="cuda"), None if there is none.
    julia_gpu: str | None = None
    #: Whether the method uses the parts of a :class:`~pystiffsens.SplitRHS` (IMEX; the exponential linear part).
    splits: bool = False

    def _names(self, name: str, aliases, julia: str | None, julia_gpu: str | None) -> None:
        self.name, self.aliases, self.julia, self.julia_gpu = name, tuple(aliases), julia, julia_gpu

    @abc.abstractmethod
    def stability(self):
        """The stability function of the method (:mod:`pystiffsens.solvers.stability`)."""

    @abc.abstractmethod
    def init(self, fn, t0, y0, args, h0):
        ...

    @abc.abstractmethod
    def attempt(self, fn, t, h, state, args, tol) -> Attempt:
        ...

    @abc.abstractmethod
    def y_of(self, state):
        ...

    @abc.abstractmethod
    def interpolate(self, dense, theta):
        ...

    @property
    def error_order(self) -> int:
        """Order of the error estimate, for the controller's exponent 1/(q+1)."""
        return self.order - 1

    def accept(self, state, err_norm, h, tol):
        """State and next step size after an accepted step."""
        return state, h * _factor(err_norm, self.error_order, MAX_FACTOR)

    def restart(self, state):
        """The state after a step over a switch in time (a step to an adjacent stop, :mod:`pystiffsens.integrate`),
        where what the method kept of earlier steps stops describing the solution. A one-step method keeps nothing."""
        return state

    def reject(self, state, err_norm, h, tol):
        """Next step size after a rejected step (the state is the one before the step)."""
        return h * jnp.minimum(1.0, _factor(err_norm, self.error_order, 1.0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class OneStepState(NamedTuple):
    """State of a one-step method: the solution alone."""

    y: Any


class OneStepSolver(AbstractSolver):
    """A one-step method defined by a coefficient tableau (``name``, ``order``, ``embedded_order``).

    ``aliases``, ``julia`` and ``julia_gpu`` as in :class:`AbstractSolver`.
    """

    def __init__(self, tableau, *, aliases=(), julia: str | None = None, julia_gpu: str | None = None):
        self.tableau = tableau
        self._names(tableau.name, aliases, julia, julia_gpu)
        self.order = tableau.order

    @property
    def error_order(self) -> int:
        """The lower of the two orders: the estimate ``y1 - y1_hat`` is ``O(h^(q+1))`` with ``q`` the
        lower one, whether the embedded solution is the less accurate (Rodas, KenCarp4) or the more
        accurate one (Rosenbrock23, TR-BDF2, which advance with the lower order)."""
        return min(self.tableau.order, self.tableau.embedded_order)

    def init(self, fn, t0, y0, args, h0):
        return OneStepState(y0)

    def stability(self) -> OneStepStability:
        """``R(z)`` of the tableau."""
        return _stability_of(self.tableau)

    def y_of(self, state):
        return state.y


class RungeKuttaSolver(OneStepSolver):
    """A Runge–Kutta method of a :class:`~pystiffsens.solvers.ButcherTableau` (ESDIRK, FIRK).

    Its ``dense`` output on a step is ``(y0, h k_1, ..., h k_s)`` (a tuple, or an array of
    those rows), read through the tableau's dense-output weights.
    """

    def interpolate(self, dense, theta):
        """``y0 + sum_i b_i(θ) h k_i`` with ``b_i(θ) = sum_k dense[i, k] θ^(k+1)``."""
        coeffs = self.tableau.dense
        powers = theta ** jnp.arange(1, coeffs.shape[1] + 1)
        weights = coeffs @ powers
        return dense[0] + weighted_sum([weights[i] for i in range(coeffs.shape[0])], dense[1:])


@functools.cache
def _stability_of(tableau) -> OneStepStability:
    return OneStepStability.from_tableau(tableau)


def _factor(err_norm, q, max_factor):
    """Elementary controller ``SAFETY * err^(-1/(q+1))`` clipped to [MIN_FACTOR, max_factor]."""
    raw = SAFETY * jnp.where(err_norm > 0, err_norm, 1e-10) ** (-1.0 / (q + 1))
    raw = jnp.where(jnp.isfinite(raw), raw, MIN_FACTOR)
    return jnp.clip(raw, MIN_FACTOR, max_factor)


def scaled_rms(x, scale, mask=None):
    """Hairer's RMS norm of ``x / scale``, optionally over the components where ``mask`` is 1."""
    r = (x / scale) ** 2
    if mask is None:
        return jnp.sqrt(jnp.mean(r))
    return jnp.sqrt(jnp.sum(mask * r) / jnp.sum(mask))
