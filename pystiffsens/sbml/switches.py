"""Stops that carry a solve across the times at which its right-hand side jumps.

A model input written as ``Fsk_level * piecewise(0, time - Fsk_time < 0, 1)`` (Isensee_JCB2018
of the PEtab benchmark collection) makes the right-hand side jump at ``t = Fsk_time``. A step
across that time has an error of about its size times the jump, so an adaptive solver shrinks
its steps until they fall below the smallest it allows (``DtLessThanMin``): Isensee failed so in
18 of its 123 simulations at rtol 1e-9 and 58 at 1e-10 (benchmarks/README.md, section 8). A stop
at the switch time alone does not help: the step that ends on it evaluates the right-hand side
there (Rodas5P's last stages have ``c = 1``), where the condition has already changed, and the
steps shrink towards the stop instead. AMICI finds such switches as roots of its Heaviside
functions and restarts the solver at each.

Here each switch time ``T`` becomes three stops: the floats next to ``T`` on either side and
``T`` itself. The integration loop goes from one of them to the next by a step whose stage times
all round to its start (:mod:`pystiffsens.integrate`, "Stops next to each other"), so every step
sees the right-hand side of one side of the switch, whichever side the condition gives at ``T``
itself, and the steps after them start with the step size proposed before (a multistep method
at order one). A ulp-long step alone is not enough: on Isensee its error test failed (the
jump times one ulp exceeds atol 1e-12), which at that size ends the solve with ``DtLessThanMin``.
The switch times are traced values (each lane of a batch has its own), so the stops are too: a
switch time outside the open interval ``(t0, t1)``, or equal to another stop, is moved to ``t0``,
where a solve counts a stop as reached before its first step.
Derivatives do not pass through the switch times (``lax.stop_gradient``): a switch time that
depends on a differentiated parameter would need the jump's own contribution, which is not
computed (:func:`pystiffsens.petab.load` refuses such problems).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def stops(saveat, switch_times, t0, t1):
    """``(stops, positions)``: the stops of a solve from ``t0`` to ``t1`` that saves at ``saveat`` and steps over the
    ``switch_times``.

    ``saveat`` is increasing, in ``[t0, t1]``, and ends at ``t1``; ``stops`` holds it and, around
    each switch time, the stops described in the module docstring (``3 * len(switch_times)`` more,
    sorted); ``stops[positions]`` is ``saveat``, so ``solution.ys[positions]`` are the states there.
    """
    saveat = jnp.asarray(saveat, jnp.float64)
    at = lax.stop_gradient(jnp.asarray(switch_times, jnp.float64))
    extra = jnp.sort(jnp.concatenate([jnp.nextafter(at, -jnp.inf), at, jnp.nextafter(at, jnp.inf)]))
    repeated = jnp.concatenate([jnp.zeros((1,), bool), extra[1:] == extra[:-1]])
    keep = (extra > t0) & (extra < t1) & ~repeated & ~jnp.isin(extra, saveat)
    every = jnp.sort(jnp.concatenate([saveat, jnp.where(keep, extra, t0)]))
    return every, jnp.searchsorted(every, saveat)
