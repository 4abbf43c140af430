"""The native backend's compiled programs, kept for the process, and the plans of repeated calls.

:class:`Programs` keeps one compiled program per structure (the problem's functions and
parameter structure, the solver, the sensitivity, the static options, the shapes, the
device), with its memory: the estimate, checked before it is compiled, and XLA's plan of
it. A :class:`Plan` is what repeated ``pss.solve``/``pss.gradient`` calls of one computation
share: its record lengths, its options as program arguments, the programs it has run and
the record length the last call needed. A repeated call finds its plan with one dictionary
lookup and runs a program, so none of that is resolved again (``benchmarks/bench_front_door.py``).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from .. import _mappings, _program_cache, _xla, memory
from ..options import Options


def as_arguments(options: Options) -> Options:
    """``options`` with float64 scalar leaves, so that every call matches the compiled argument types."""
    return jax.tree_util.tree_map(np.float64, options)


class Program(NamedTuple):
    """A compiled program and its memory: ``estimate`` (bytes of ``algorithm``'s records for ``shapes``; 0 when
    nothing grows with the steps) and ``planned`` (XLA's plan of the compiled program)."""

    compiled: Any
    estimate: int
    planned: int
    algorithm: Any
    shapes: memory.Shapes
    batch: int
    device: Any

    def check(self, memory_limit=None) -> None:
        """``ValueError`` when the estimate or XLA's plan exceeds the memory limit now in force."""
        if self.estimate:
            memory.check_program(self.estimate, self.planned, self.algorithm, self.shapes, batch=self.batch,
                                 memory_limit=memory_limit, device=self.device)


@dataclasses.dataclass(eq=False)
class Plan:
    """One computation of repeated front-door calls, resolved on the first.

    ``lengths`` are the record lengths it may take (:mod:`pystiffsens.memory`), ``options`` its
    options as program arguments (:func:`as_arguments`), ``program(length, args,
    memory_limit)`` makes the :class:`Program` for one length. ``start`` indexes the length
    the last call needed: a repeated call with similar values runs once instead of growing
    its records again.
    """

    lengths: tuple[int, ...]
    options: Options
    program: Callable[..., Program]
    start: int = 0
    programs: dict[int, Program] = dataclasses.field(default_factory=dict)

    def run(self, leaves, y0, t0, ts, memory_limit, full: Callable[[list], bool]) -> list:
        """The outputs, as NumPy arrays, of the programs from the last call's record length up, until one's records
        held the computation (``full(outputs)`` false) or the last length ran. The memory limit is checked on
        every call."""
        args = (leaves, y0, t0, ts, self.options)
        for index in range(self.start, len(self.lengths)):
            program = self.programs.get(index)
            if program is None:
                program = self.programs[index] = self.program(self.lengths[index], args, memory_limit)
            else:
                program.check(memory_limit)
            out = [None if x is None else np.asarray(x) for x in program.compiled(*args)]
            if not full(out):
                break
        self.start = index
        return out


class Programs:
    """Compiled programs and their memory, one per structure, and the plans of repeated calls; kept for the process.

    A program is compiled on its first use, after its estimated memory is checked against the
    limit (:func:`pystiffsens.memory.check_bytes`); XLA's plan of it
    (:func:`pystiffsens.memory.compiled_bytes`) and the estimate are compared with the limit
    in force on every use (:meth:`Program.check`). The :data:`KEPT` most recently made
    programs and plans are kept (a new ``rhs`` function each call would otherwise keep every
    program it made), fewer where the process runs short of memory mappings
    (:func:`pystiffsens._mappings.make_room`). Programs of built-in problems are also kept on
    disk as traced programs (:mod:`pystiffsens._program_cache`).
    """

    #: Compiled programs (and plans) kept in memory, least recently used dropped first.
    KEPT = 256

    def __init__(self) -> None:
        self._compiled: collections.OrderedDict = collections.OrderedDict()
        self._shapes: dict = {}
        self._plans: dict = {}

    def shapes(self, spec, inp, saved_steps: int) -> memory.Shapes:
        """Sizes of a solver state and of a step's dense output for ``spec`` and the inputs ``inp``
        (by ``jax.eval_shape``, once per structure), with records of ``saved_steps``."""
        key = (spec.rhs, spec.structure, spec.solver, inp.y0.shape, inp.ts.shape)
        if key not in self._shapes:
            problem, theta, _ = spec.flat(inp.leaves, inp.t0, inp.ts)
            self._shapes[key] = memory.shapes(problem.rhs, spec.solver, inp.y0, theta, inp.ts.shape[0], saved_steps)
        return self._shapes[key]._replace(saved_steps=saved_steps)

    def get(self, key, identity, build: Callable, args: tuple, device, *, algorithm=None, shapes: memory.Shapes,
            estimate: int, memory_limit=None, batch: int = 1) -> Program:
        """The :class:`Program` of ``build()`` for ``args``, compiled on first use; its memory checked on every use.

        ``key`` identifies the compiled program in memory, ``identity`` the traced program
        on disk (:func:`pystiffsens._program_cache.compile_cached`); ``estimate`` is the
        planned memory in bytes of ``algorithm`` (None: a solve's step records) for ``shapes``.
        """
        program = self._compiled.get(key)
        if program is None:
            # A plain solve (estimate 0: no records) allocates nothing that grows with the steps.
            if estimate:
                memory.check_bytes(estimate, algorithm, shapes, batch=batch, memory_limit=memory_limit, device=device)
            _mappings.make_room(self._compiled, self._forget)
            with jax.default_device(device):
                compiled = _program_cache.compile_cached(_xla.jit(build()), args, identity, device)
            program = Program(compiled, estimate, memory.compiled_bytes(compiled), algorithm, shapes, batch, device)
            self._compiled[key] = program
            if len(self._compiled) > self.KEPT:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        program.check(memory_limit)
        return program

    def _forget(self, program: Program) -> None:
        """Drop the plans that hold ``program``, a program dropped from the cache, so that it is freed."""
        for key in [key for key, plan in self._plans.items() if any(p is program for p in plan.programs.values())]:
            del self._plans[key]

    def plan(self, key, make: Callable[[], Plan]) -> Plan:
        """The plan kept for ``key``, made by ``make()`` on first use (and not kept where ``key`` is unhashable:
        options with array tolerances)."""
        try:
            plan = self._plans.get(key)
        except TypeError:
            return make()
        if plan is None:
            if len(self._plans) >= self.KEPT:
                del self._plans[next(iter(self._plans))]
            plan = self._plans[key] = make()
        return plan

    def compiled(self) -> list:
        """The compiled programs kept."""
        return [program.compiled for program in self._compiled.values()]

    def clear(self) -> None:
        """Forget every program, plan and size (the next call compiles again, or loads from the disk cache)."""
        self._compiled.clear()
        self._shapes.clear()
        self._plans.clear()
