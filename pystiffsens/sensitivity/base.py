"""The contract every sensitivity algorithm implements, and the flat problem they share.

A sensitivity algorithm is a small immutable strategy object holding only its options (as
SciMLSensitivity's sensealg types). It supplies the derivative of a solve in two halves
that work for every solver, because they only use the solver contract
(``init``/``attempt``/``y_of``/``interpolate``) and the shared integration loop:

* :meth:`~AbstractSensitivity.forward` solves and keeps what the derivative needs: forward
  methods the sensitivities ``d ys / d theta`` (and ``d ys / d y0``) themselves, adjoints the
  forward solve's records;
* :meth:`~AbstractSensitivity.backward` turns cotangents ``g_ys`` on the saved states into
  cotangents on the parameters and the initial state: forward methods contract their
  sensitivities, adjoints solve backward.

``pss.gradient`` runs the two halves around the loss; ``pss.solve`` under ``jax.grad`` runs
them as the backward rule of the solve (:mod:`.rules`), so both give the same numbers.
Each algorithm also estimates its own memory (:meth:`~AbstractSensitivity.memory`).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax.numpy as jnp

from ..returncode import ReturnCode

WORD = 8
"""Bytes of a float64."""
STEP_MATRICES = 6
"""One step of an implicit solver on a system of size ``m`` needs about ``6 m^2`` words (Jacobian, iteration
matrix, LU factors and their temporaries) ..."""
STEP_VECTORS = 64
"""... plus ``64 m`` (stages). Both fitted to XLA's own plans (``memory_analysis``) on dense test systems."""


class FlatProblem(NamedTuple):
    """A problem with its parameters as one flat vector.

    ``rhs(t, y, theta)``; initial time ``t0``; ``stops`` the saved times (the last one is the
    final time; the first may equal ``t0``).
    """

    rhs: Callable
    t0: Any
    stops: Any


class ForwardPass(NamedTuple):
    """What :meth:`AbstractSensitivity.forward` returns.

    ``ys`` the states at the stops; ``status``/``stats`` of the forward solve;
    ``buffer_full`` whether a recording solve stopped because its records were full (rerun
    with longer ones); ``residual`` what the algorithm's backward half needs; ``trajectory``
    the forward :class:`~pystiffsens.integrate.Trajectory` (its step records when asked).
    """

    ys: Any
    status: Any
    stats: dict
    buffer_full: Any
    residual: Any
    trajectory: Any


class BackwardPass(NamedTuple):
    """What :meth:`AbstractSensitivity.backward` returns: cotangents on ``theta`` and ``y0``, the status and
    cost counters of any backward solve, and whether its records were full."""

    g_theta: Any
    g_y0: Any
    status: Any = ReturnCode.Success
    stats: dict = {}
    buffer_full: Any = False


class Shapes(NamedTuple):
    """Sizes a memory estimate depends on: states ``n``, parameters ``P``, stops, bytes of one solver state
    and of one step's dense output, and the length of the step records."""

    n: int
    P: int
    n_stops: int
    state: int
    dense: int
    saved_steps: int


class AbstractSensitivity(abc.ABC):
    """Base of every sensitivity algorithm; see the module docstring.

    Class attributes: ``name`` (SciMLSensitivity's) and ``aliases`` (how ``pss.sensitivity``
    finds it); ``forward_mode`` (True: tangents, so ``jax.jvp`` through a solve works and the
    cost grows with the number of parameters; False: an adjoint); ``backward_solve`` (whether it
    solves an adjoint equation backward in time, whose counters come as ``backward_*``);
    ``records`` (what the
    forward pass keeps per accepted step: ``"states"``, ``"dense"`` or None, so whether its
    cost depends on the length of the records); ``failure_warning`` (issued by
    ``pss.gradient`` when a computation fails, None for none).
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    forward_mode: ClassVar[bool] = False
    backward_solve: ClassVar[bool] = False
    records: ClassVar[str | None] = None
    failure_warning: ClassVar[str | None] = None
    #: Snapshots kept instead of per-step records (an option of the algorithms that record; None: a record per step).
    checkpoints: int | None = None

    @abc.abstractmethod
    def forward(self, problem: FlatProblem, solver, theta, y0, options, *, saved_steps: int | None,
                wrt_y0: bool = False, record_states: bool = False) -> ForwardPass:
        """Solve and keep what :meth:`backward` needs.

        ``options`` are resolved :class:`~pystiffsens.options.Options`; ``saved_steps`` the
        length of any per-step records (None: ``options.max_steps``); ``wrt_y0`` whether derivatives with respect to
        ``y0`` will be asked for (forward methods then carry ``n`` more tangents);
        ``record_states`` whether the trajectory must keep the state of every step (for the
        solution's step records) even if the algorithm does not need them.
        """

    @abc.abstractmethod
    def backward(self, problem: FlatProblem, solver, theta, y0, options, fwd: ForwardPass, g_ys, *,
                 saved_steps: int) -> BackwardPass:
        """Cotangents on ``theta`` and ``y0`` of the cotangents ``g_ys`` on ``fwd.ys``."""

    @abc.abstractmethod
    def memory(self, shapes: Shapes) -> dict[str, int]:
        """Estimated bytes by component for one derivative of a problem of these ``shapes``."""

    def checkpointed(self, checkpoints: int) -> AbstractSensitivity:
        """This algorithm keeping ``checkpoints`` snapshots of the forward solve instead of a record per step, so that
        its memory does not grow with the records' length: itself when it records nothing, checkpoints already, or
        has no ``checkpoints`` option (an instance attribute set from its constructor's argument of that name).

        The long branch of a compiled program runs it (:func:`~pystiffsens.sensitivity.rules.branches`).
        """
        if self.records is None or vars(self).get("checkpoints", 0) is not None:
            return self
        return type(self)(**(vars(self) | {"checkpoints": checkpoints}))

    def label(self) -> str:
        """The name with the options that differ from the defaults, for messages."""
        return repr(self) if vars(self) != vars(type(self)()) else self.name

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))


class ForwardModeSensitivity(AbstractSensitivity):
    """An algorithm whose forward half computes the sensitivities themselves.

    Its residual is ``(S_theta, S_y0)``: ``d ys / d theta`` (``K x n x P``) and ``d ys / d y0``
    (``K x n x n``, or None when ``y0`` is not differentiated). The backward half contracts
    them with the cotangents; the tangent of a solve applies them to the tangents
    (:mod:`.rules`). Its :meth:`forward` also takes ``wrt_theta``, the entries of ``theta``
    to differentiate with respect to (an integer array; None: all): ``S_theta`` then has one
    column per entry, in that order, and costs one tangent per entry.
    """

    forward_mode = True

    @abc.abstractmethod
    def forward(self, problem: FlatProblem, solver, theta, y0, options, *, saved_steps: int | None,
                wrt_y0: bool = False, wrt_theta=None, record_states: bool = False) -> ForwardPass:
        """:meth:`AbstractSensitivity.forward`, with the sensitivities to the entries ``wrt_theta`` of ``theta`` only."""

    def backward(self, problem, solver, theta, y0, options, fwd, g_ys, *, saved_steps):
        S_theta, S_y0 = fwd.residual
        g_y0 = jnp.zeros_like(y0) if S_y0 is None else jnp.einsum("kn,knm->m", g_ys, S_y0)
        return BackwardPass(jnp.einsum("kn,knp->p", g_ys, S_theta), g_y0)


def with_entries(theta, positions, values):
    """``theta`` with its entries at the (sorted, distinct) integer ``positions`` replaced by ``values``."""
    return theta.at[positions].set(values, indices_are_sorted=True, unique_indices=True)


def checkpoints_option(checkpoints):
    """``checkpoints`` checked: None (records at every step) or a positive integer."""
    if checkpoints is not None and not (
        isinstance(checkpoints, int) and not isinstance(checkpoints, bool) and checkpoints >= 1
    ):
        raise ValueError(f"checkpoints={checkpoints!r} must be None (a record per step) or a positive integer.")
    return checkpoints


def suggested_checkpoints(saved_steps: int) -> int:
    """``ceil(sqrt(S))`` checkpoints for ``S`` steps: the memory of two-level checkpointing is smallest there."""
    return max(1, math.isqrt(max(saved_steps - 1, 0)) + 1)


def checkpoints_bytes(checkpoints: int, state: int) -> int:
    """``checkpoints`` snapshots of the integration loop: a solver state of ``state`` bytes, the time, step size,
    stop index, status and counters."""
    return checkpoints * (state + 8 * WORD)


def combine_status(*statuses):
    """The first non-Success status, in order."""
    out = jnp.asarray(ReturnCode.Success)
    for status in statuses:
        out = jnp.where(out == ReturnCode.Success, status, out)
    return out


def step_bytes(m: int) -> int:
    """Working memory of one implicit step on a system of size ``m``."""
    return WORD * (STEP_MATRICES * m * m + STEP_VECTORS * m)


def records_bytes(per_step: int, length: int) -> int:
    """``length`` per-step records of ``per_step`` bytes plus step times, sizes and stop indices."""
    return length * (per_step + 3 * WORD)


def saved_ys_bytes(shapes: Shapes) -> int:
    return WORD * shapes.n_stops * shapes.n
