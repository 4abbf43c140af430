"""The XLA options every pystiffsens program is compiled with, and ``jit``, which applies them.

**Parallel task assignment off.** XLA:CPU's ``ParallelTaskAssigner`` splits an operation
across the intra-op threads when its cost model rates it expensive, and that model counts
whole operands. Inside a step loop every operation is small, but the gathers that read a
step buffer (the dense output an adjoint interpolates, the step times it searches) are rated
by the buffer's size. So once the buffers pass a few hundred KiB, each of those gathers
hands work to another thread on every step. The time then depends on the buffer length, not
on the work.

Measured (benchmarks/README.md, "XLA's parallel task assignment"): a batch of 32 ROBER
InterpolatingAdjoint gradients took 18-24 % longer with 1024-step buffers than with 1000-step
ones. With the pass disabled, the same batch with 1000 or 1024 steps of buffer and 1e3, 1e4 or
1e5 steps of budget is within 3 %.

**Faster compilation, on request.** With ``PYSTIFFSENS_FAST_COMPILE=1`` the programs are also
compiled with two changes that shorten compilation at some cost in run time
(:data:`FAST_COMPILE_OPTIONS`, :data:`FAST_COMPILE_DISABLED_PASSES`). Off by default; the test
suite, whose programs are many and varied and whose run times are short, turns it on
(``tests/conftest.py``).

* ``xla_cpu_use_fusion_emitters=False``: newer XLA:CPU compiles each fused kernel as its own
  MLIR module and lowers it through LLVM separately (150-250 kernels in the gradient programs
  measured), and the option selects the older elemental emitters instead. What that gains
  depends on the program (benchmarks/README.md, section 4: single ROBER gradients compile in
  0.91x the time, vmapped batches of 32 in 1.35x).
* Without XLA's ``while-loop-invariant-code-motion`` pass, which hoists what a loop body
  computes the same way on every iteration out of the loop. For each loop it first works out
  the trip count (``ComputeWhileLoopTripCount``, which copies parts of the program to evaluate
  them), and pystiffsens's programs are loops within loops: the steps, each stage's Newton
  iteration, the adjoint's backward pass, the ladder of record lengths. In a ``perf`` profile
  of compiling the ROBER Rodas5P InterpolatingAdjoint gradient that analysis was the largest
  single item (12 % of the samples). Measured (benchmarks/README.md section 4, ``bench_compile.py
  --disable-pass while-loop-invariant-code-motion``): single gradient programs compile in about
  0.8x the time and run as fast, vmapped batches compile in about 0.87x the time, but KenCarp4's
  adjoint batches ran 1.2-1.4x slower without the pass, so it stays on by default.

XLA versions that do not know an option reject it; :func:`supported` leaves out what the
running XLA does not know.

All of this was measured on XLA:CPU, so only programs compiled for the CPU get these options;
on another backend (a GPU) :func:`compiler_options` is empty and XLA's defaults apply. (The
parallel task assigner and the emitters are XLA:CPU's own; while-loop invariant code motion
also runs on GPUs, where its effect has not been measured.)

JAX accepts compiler options only on the outermost ``jit`` of a program, so this applies to
the programs pystiffsens compiles and runs itself (solves, gradients, sweep batches, training
steps); helpers meant to be called inside other jitted code (the stiffness proxies, the
batched neural-ODE gradient, the ResNet's neural-ODE loss) stay plain ``jax.jit`` and take the options of their caller.
"""

from __future__ import annotations

import functools

import jax

from ._env import switched_on

#: The XLA passes every pystiffsens program compiled for the CPU leaves out (see the module docstring).
DISABLED_PASSES = ("cpu-parallel-task-assigner",)
#: Passed to XLA with every program pystiffsens compiles for the CPU (``jax.jit(..., compiler_options=...)``).
COMPILER_OPTIONS = {"xla_disable_hlo_passes": ",".join(DISABLED_PASSES)}

FAST_COMPILE_VARIABLE = "PYSTIFFSENS_FAST_COMPILE"
#: Added to :data:`COMPILER_OPTIONS` when :data:`FAST_COMPILE_VARIABLE` is switched on.
FAST_COMPILE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
#: Added to the passes :data:`COMPILER_OPTIONS` leaves out when :data:`FAST_COMPILE_VARIABLE` is switched on.
FAST_COMPILE_DISABLED_PASSES = ("while-loop-invariant-code-motion",)


def compiler_options(fast: bool | None = None) -> dict:
    """:data:`COMPILER_OPTIONS`, with :data:`FAST_COMPILE_OPTIONS` and :data:`FAST_COMPILE_DISABLED_PASSES` added
    if ``fast`` (by default, if ``$PYSTIFFSENS_FAST_COMPILE`` is switched on), less what the running XLA does not
    know; empty unless JAX's default backend is the CPU."""
    if jax.default_backend() != "cpu":
        return {}
    options: dict = dict(COMPILER_OPTIONS)
    if switched_on(FAST_COMPILE_VARIABLE) if fast is None else fast:
        disabled = [name for name in options.get("xla_disable_hlo_passes", "").split(",") if name]
        options.update(FAST_COMPILE_OPTIONS, xla_disable_hlo_passes=",".join(disabled + list(FAST_COMPILE_DISABLED_PASSES)))
    return supported(options)


def jit(fn, **kwargs):
    """``jax.jit(fn, **kwargs)`` with :func:`compiler_options`.

    Use it to compile :func:`pystiffsens.make_gradient_fn`'s function as pystiffsens's own
    calls are compiled: ``pss.jit(pss.make_gradient_fn(problem, "Rodas5P", "adjoint"))``.
    Only for the outermost jit: JAX raises a ``ValueError`` for compiler options on a jit
    that runs inside another one.
    """
    return jax.jit(fn, compiler_options=compiler_options(), **kwargs)


def supported(options: dict) -> dict:
    """The entries of ``options`` that the running XLA accepts as compiler options."""
    return {name: value for name, value in options.items() if _known(name, value)}


@functools.cache
def _known(name: str, value) -> bool:
    """Whether XLA accepts ``name=value``: compiles a one-operation program with it once per process."""
    try:
        jax.jit(lambda x: x + 1.0, compiler_options={name: value}).lower(0.0).compile()
    except Exception as error:  # jaxlib's runtime error class has moved between versions
        if "No such compile option" in str(error):
            return False
        raise
    return True
