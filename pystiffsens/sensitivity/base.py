"""The contract every sensitivity algorithm implements, and the flat problem they share.

A sensitivity algorithm is a small immutable strategy object holding only its options
(as SciMLSensitivity's sensealg types). ``compute`` receives the problem with its
parameters flattened to one vector ``theta`` and any solver, and returns the loss, its
gradient with respect to ``theta``, a status and cost counters. It works for every solver
because it only uses the solver contract (``init``/``attempt``/``y_of``/``interpolate``)
and the shared integration loop.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..integrate import integrate
from ..returncode import ReturnCode


class FlatProblem(NamedTuple):
    """A problem with its parameters as one flat vector.

    ``rhs(t, y, theta)``, ``loss(ys, theta)`` (``ys`` the states at ``stops``), initial
    state ``y0`` at ``t0``; ``stops`` the saved times (the last one is the final time).
    """

    rhs: Callable
    loss: Callable
    y0: Any
    t0: Any
    stops: Any


class Settings(NamedTuple):
    """Integration settings shared by forward and backward solves.

    ``max_steps`` bounds the step attempts of every solve; ``max_saved_steps`` (default
    ``max_steps``) the length of the per-step buffers of a solve that records its steps
    (see :mod:`pystiffsens.integrate` and :mod:`pystiffsens.memory`).
    """

    rtol: Any
    atol: Any
    dt: Any  # None for adaptive steps
    max_steps: int
    max_saved_steps: int | None = None

    @property
    def saved_steps(self) -> int:
        """Length of the per-step buffers of a recording solve."""
        return self.max_steps if self.max_saved_steps is None else self.max_saved_steps

    def integrate(self, fn, solver, y0, args, *, t0, stops, **kwargs):
        return integrate(
            fn, solver, y0, args, t0=t0, stops=stops, rtol=self.rtol, atol=self.atol,
            dt=self.dt, max_steps=self.max_steps, max_saved_steps=self.saved_steps, **kwargs,
        )


class SensitivityOutput(NamedTuple):
    """What ``compute`` returns; ``buffer_full`` as :attr:`~pystiffsens.integrate.Trajectory.buffer_full`
    of the recording solves (forward, and backward where they record)."""

    loss: Any
    grad: Any
    status: Any
    stats: dict
    buffer_full: Any = False


class AbstractSensitivity(abc.ABC):
    """Base of every sensitivity algorithm.

    Subclasses implement ``compute(problem, solver, theta, settings) -> SensitivityOutput``.
    """

    name: str = ""
    #: Whether the algorithm solves an adjoint equation backward in time (adds ``backward_*`` stats).
    backward: bool = False
    #: Warning ``pss.gradient`` issues when a computation with this algorithm fails (None: none).
    failure_warning: str | None = None

    @abc.abstractmethod
    def compute(self, problem: FlatProblem, solver, theta, settings: Settings) -> SensitivityOutput:
        ...

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def loss_gradients(problem: FlatProblem, ys, theta):
    """Loss value, its gradient with respect to the saved states and its explicit parameter gradient."""
    value, (g_ys, g_theta) = jax.value_and_grad(problem.loss, argnums=(0, 1))(ys, theta)
    return value, g_ys, g_theta


def combine_status(*statuses):
    """The first non-Success status, in order."""
    out = jnp.asarray(ReturnCode.Success)
    for status in statuses:
        out = jnp.where(out == ReturnCode.Success, status, out)
    return out


def prefixed(stats: dict, prefix: str) -> dict:
    return {f"{prefix}{name}": value for name, value in stats.items()}
