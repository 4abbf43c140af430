"""Synchronous execution on CPU: switched on by ``import pystiffsens``, with an opt-out.

JAX's CPU client runs a computation it deems expensive (a program with loops, as every
solve is) on a thread of its own pool and returns at once ("asynchronous dispatch",
``jax_cpu_enable_async_dispatch``, on by default since JAX 0.4.32; openxla/xla#15740). The
caller then waits for that thread to finish and wake it. On the 2 shared cores pystiffsens
is benchmarked on, the hand-over cost 70–90 µs a call, whatever the program did: a compiled
Rodas5P solve of one step took 0.155 ms with it and 0.072 ms without, the ROBER solve 0.321
against 0.231 ms (``bench_loop_layouts.py``; benchmarks/README.md, section 6). ``import pystiffsens`` therefore
turns it off, so that each call runs in the thread that made it (which releases the GIL
while it runs). The setting belongs to JAX's CPU client, which reads it once when created:
where a JAX computation ran before ``import pystiffsens``, the client exists already and
keeps asynchronous dispatch. Set ``PYSTIFFSENS_CPU_ASYNC_DISPATCH=1`` to keep JAX's default.
"""

from __future__ import annotations

import jax

from ._env import switched_on

KEEP_VARIABLE = "PYSTIFFSENS_CPU_ASYNC_DISPATCH"


def make_synchronous() -> bool:
    """Turn off asynchronous dispatch on CPU unless :data:`KEEP_VARIABLE` is set; whether it did."""
    if switched_on(KEEP_VARIABLE):
        return False
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True
