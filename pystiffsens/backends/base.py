"""The interface every backend implements: names, checks, the automatic sensitivity choice, solve and gradients.

The entry points (``pss.solve``, ``pss.gradient``, ``pss.sweep``, the CLI) resolve the
backend once (:func:`pystiffsens.backends.get`) and call it with objects: the problem, the
resolved :class:`~pystiffsens.options.Options`, the device name. A backend resolves solver
and sensitivity names against its own vocabulary, so the same spelling reaches the method
it runs (``"BDF2"`` is OrdinaryDiffEq's ``ABDF2`` on Julia).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ..results import GradientResult


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """Per-stiffness-value results of a sweep batch and its timing.

    ``run_time_s`` is the wall time of the batched run over every value, compilation excluded
    where the backend can separate it (JAX), in which case ``compile_time_s`` measures
    tracing and compilation; a backend that cannot separate them reports NaN there.
    """

    results: list[GradientResult]
    run_time_s: float
    compile_time_s: float


@dataclasses.dataclass(frozen=True)
class Choice:
    """A resolved sensitivity algorithm and, when the backend chose it, the rule it followed."""

    algorithm: Any
    rule: str | None = None


class Backend(abc.ABC):
    """One way of running solves and gradients (:mod:`pystiffsens.backends`)."""

    name: ClassVar[str]
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    @abc.abstractmethod
    def solver(self, value):
        """The solver object for a name or object; ``ValueError`` if this backend has no such method."""

    @abc.abstractmethod
    def solver_names(self) -> list[str]:
        """Names of the solvers this backend runs."""

    @abc.abstractmethod
    def sensitivity_names(self) -> tuple[list[str], dict[str, str]]:
        """Names of the sensitivity algorithms this backend runs, and its aliases."""

    @abc.abstractmethod
    def sensitivity(self, value, problem, solver, options, *, device: str = "cpu", memory_limit=None) -> Choice:
        """The algorithm for a name or object, or for None/``"auto"`` the backend's own choice."""

    @abc.abstractmethod
    def check(self, problem, solver, sensitivity, options, device: str) -> None:
        """``ValueError`` (or ``RuntimeError`` for a missing device) for what this backend cannot run."""

    @abc.abstractmethod
    def solve(self, problem, solver, options, *, sensitivity=None, params=None, y0=None, save_steps=None,
              device: str = "cpu", memory_limit=None):
        """Solve; a :class:`~pystiffsens.results.Solution`."""

    @abc.abstractmethod
    def gradient(self, problem, solver, sensitivity: Choice, options, *, params=None, device: str = "cpu",
                 memory_limit=None) -> GradientResult:
        """Loss and gradient of ``problem.loss``; a :class:`~pystiffsens.results.GradientResult`."""

    def prepare_solve(self, problem, solver, options, *, sensitivity=None, save_steps=None, device: str = "cpu",
                      memory_limit=None) -> Callable[..., Any]:
        """``solve(params=None, y0=None)``: :meth:`solve` with everything else resolved once, for repeated calls
        (``pss.solve`` keeps it per set of arguments). This default resolves nothing more than :meth:`solve` does."""
        return lambda params=None, y0=None: self.solve(problem, solver, options, sensitivity=sensitivity, params=params,
                                                       y0=y0, save_steps=save_steps, device=device,
                                                       memory_limit=memory_limit)

    def prepare_gradient(self, problem, solver, sensitivity: Choice, options, *, device: str = "cpu",
                         memory_limit=None) -> Callable[..., GradientResult]:
        """``gradient(params=None)``: :meth:`gradient` with everything else resolved once, for repeated calls
        (``pss.gradient`` keeps it per set of arguments). This default resolves nothing more than :meth:`gradient`."""
        return lambda params=None: self.gradient(problem, solver, sensitivity, options, params=params, device=device,
                                                 memory_limit=memory_limit)

    @abc.abstractmethod
    def gradient_batch(self, problem, stiffness: np.ndarray, solver, sensitivity: Choice, options,
                       device: str = "cpu") -> Callable[[], BatchResult]:
        """Prepare the gradients over the stiffness values (compile, where there is compiling); return ``run()``.

        Preparing and running are separate so that a sweep can prepare the next batches while
        it runs the current one.
        """
