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
The stops do not pass derivatives (``lax.stop_gradient``). Where a switch time ``T`` depends on
a differentiated parameter, moving it moves the jump, and the solution at later times changes by
``Phi(t, T) (f_-(T) - f_+(T)) dT`` (the jump's own contribution, which AMICI adds at each root of
its Heaviside functions). :func:`warped` gives that to every sensitivity at once: the right-hand
side in a time ``s`` in which the switch stays where it is, so that the problem is smooth in the
parameters again.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jax import lax

from ..problem import SparseRHS


def stops(saveat, switch_times, t0, t1, warps=None):
    """``(stops, positions)``: the stops of a solve from ``t0`` to ``t1`` that saves at ``saveat`` and steps over the
    ``switch_times``.

    ``saveat`` is increasing, in ``[t0, t1]``, and ends at ``t1``; ``stops`` holds it and, around
    each switch time, the stops described in the module docstring (3 per switch time, sorted);
    ``stops[positions]`` is ``saveat``, so ``solution.ys[positions]`` are the states there.
    ``warps``: ``(knots, moving)``, where the solve's right-hand side is :func:`warped` with these
    ``knots`` around the switch times ``switch_times[moving]``; the stops then also hold the float
    below each end of their hats (:func:`_hats`; 2 more per such switch time).
    """
    saveat = jnp.asarray(saveat, jnp.float64)
    at = lax.stop_gradient(jnp.asarray(switch_times, jnp.float64))
    points = [jnp.nextafter(at, -jnp.inf), at, jnp.nextafter(at, jnp.inf)]
    if warps is not None:
        knots, moving = warps
        below, above, inside = _hats(knots, at[np.flatnonzero(moving)])
        points += [jnp.where(inside, jnp.nextafter(end, -jnp.inf), t0) for end in (below, above)]
    extra = jnp.sort(jnp.concatenate(points))
    repeated = jnp.concatenate([jnp.zeros((1,), bool), extra[1:] == extra[:-1]])
    keep = (extra > t0) & (extra < t1) & ~repeated & ~jnp.isin(extra, saveat)
    every = jnp.sort(jnp.concatenate([saveat, jnp.where(keep, extra, t0)]))
    return every, jnp.searchsorted(every, saveat)


def _hats(knots, fixed):
    """``(below, above, inside)``: the ends of the hat around each of the switch times ``fixed`` (:func:`warped`),
    the nearest of ``knots`` or of the other switch times on either side; ``inside`` is False for a switch time with
    none on one side (its ends are then ``fixed -/+ 1``, and it has no hat)."""
    every = jnp.concatenate([jnp.asarray(knots, jnp.float64), fixed])
    below = jnp.max(jnp.where(every[None, :] < fixed[:, None], every[None, :], -jnp.inf), axis=1)
    above = jnp.min(jnp.where(every[None, :] > fixed[:, None], every[None, :], jnp.inf), axis=1)
    inside = jnp.isfinite(below) & jnp.isfinite(above)
    return jnp.where(inside, below, fixed - 1.0), jnp.where(inside, above, fixed + 1.0), inside


def warped(rhs: SparseRHS, switch_times: Callable, knots) -> SparseRHS:
    """``rhs`` in a time ``s`` in which the ``switch_times`` (a function of the parameters ``p``) do not move.

    ``t = phi(s) = s + sum_j (T_j - Tbar_j) w_j(s)``, where ``Tbar_j`` is ``T_j`` held fixed
    (``lax.stop_gradient``) and ``w_j`` the hat function that is 1 at ``Tbar_j`` and falls to 0 at
    the nearest of ``knots`` or of the other switch times on either side (0 elsewhere, and for a
    switch time with no knot on one side). The problem in ``s`` is ``dy/ds = phi'(s) rhs(phi(s), y,
    p)``: its solution at ``s`` is the original one at ``phi(s)``, equal at every knot, and its
    switches stay at ``Tbar_j``, so derivatives by the parameters carry the switches' moves (the
    jump term of the module docstring) for forward mode and adjoints alike. Its values are the
    original's bit for bit: ``T_j - Tbar_j`` is 0, so ``phi(s) = s`` and ``phi'(s) = 1`` exactly.

    ``knots``: times that are stops of every solve of the problem (its saved times and the ends of
    its time span). A hat's slope jumps at its ends and at ``Tbar_j``, so, as at a switch, no step may
    evaluate the right-hand side at such a time for the piece on its other side: each piece holds
    its left end (``[a, Tbar)``, ``[Tbar, b)``), and a solve also stops at the float below each end
    (:func:`stops` with ``warps``), as it does below a switch. The pattern of the Jacobian is ``rhs``'s.
    """
    knots = np.unique(np.asarray(knots, dtype=np.float64))  # once, not at each trace of the right-hand side

    def fn(t, y, p):
        moved = jnp.atleast_1d(switch_times(p))
        fixed = lax.stop_gradient(moved)
        below, above, inside = _hats(knots, fixed)
        rising, falling = inside & (t >= below) & (t < fixed), inside & (t >= fixed) & (t < above)
        w = jnp.where(rising, (t - below) / (fixed - below), jnp.where(falling, (above - t) / (above - fixed), 0.0))
        slope = jnp.where(rising, 1.0 / (fixed - below), jnp.where(falling, -1.0 / (above - fixed), 0.0))
        shift = moved - fixed
        return (1.0 + jnp.sum(shift * slope)) * rhs(t + jnp.sum(shift * w), y, p)

    return SparseRHS(fn, rhs.jac_sparsity)
