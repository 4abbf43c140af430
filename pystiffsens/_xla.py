"""The XLA options every pystiffsens program is compiled with, and ``jit``, which applies them.

XLA:CPU's ``ParallelTaskAssigner`` splits an operation across the intra-op threads when its
cost model rates it expensive, and that model counts whole operands. Inside a step loop
every operation is small, but the gathers that read a step buffer (the dense output an
adjoint interpolates, the step times it searches) are rated by the buffer's size. So once
the buffers pass a few hundred KiB, each of those gathers hands work to another thread on
every step. The time then depends on the buffer length, not on the work.

Measured (benchmarks/README.md, "XLA's parallel task assignment"): a batch of 32 ROBER
InterpolatingAdjoint gradients took 18-24 % longer with 1024-step buffers than with 1000-step
ones. With the pass disabled, the same batch with 1000 or 1024 steps of buffer and 1e3, 1e4 or
1e5 steps of budget is within 3 %. The pass exists only in the CPU compiler; on GPUs the
option names no pass and changes nothing (read from XLA's sources, not run on a GPU here).

JAX accepts compiler options only on the outermost ``jit`` of a program, so this applies to
the programs pystiffsens compiles and runs itself (solves, gradients, sweep batches, training
steps); helpers meant to be called inside other jitted code (the stiffness proxies, the
batched neural-ODE gradient, the ResNet's neural-ODE loss) stay plain ``jax.jit`` and take the options of their caller.
"""

from __future__ import annotations

import jax

#: Passed to XLA with every program pystiffsens compiles (``jax.jit(..., compiler_options=...)``).
COMPILER_OPTIONS = {"xla_disable_hlo_passes": "cpu-parallel-task-assigner"}


def jit(fn, **kwargs):
    """``jax.jit(fn, **kwargs)`` with :data:`COMPILER_OPTIONS`.

    Use it to compile :func:`pystiffsens.make_gradient_fn`'s function as pystiffsens's own
    calls are compiled: ``pss.jit(pss.make_gradient_fn(problem, "Rodas5P", "adjoint"))``.
    Only for the outermost jit: JAX raises a ``ValueError`` for compiler options on a jit
    that runs inside another one.
    """
    return jax.jit(fn, compiler_options=COMPILER_OPTIONS, **kwargs)
