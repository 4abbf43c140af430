"""Loops over the lanes of a ``jax.vmap``: an unbatched loop predicate and a carry batched from the start.

Under ``jax.vmap`` a ``lax.while_loop`` whose predicate is batched runs until every lane is
done and *selects* between the old and the new carry of every lane on every iteration, so
each long buffer in the carry would be copied on every iteration. :func:`any_lane` (a
``jax.custom_batching.custom_vmap`` rule, the same idea as equinox's ``unvmap_any`` used by
diffrax) reduces "this lane is still running" over the batch, so the predicate is unbatched
and each lane masks its own update (:func:`while_any`, and the step loop of
:mod:`pystiffsens.integrate`).

:func:`every_lane` batches a loop's initial carry, which saves tracing: ``vmap`` of a
``lax.while_loop`` finds out which parts of the carry are batched by batching the loop body
again until the answer stops changing, and then once more for the loop it builds. With every
part batched from the start the first answer is final, and the last batching is the first
one again, which JAX keeps. The body of an integration loop is a whole solver step, and its
Newton loops are loops of their own. Measured (benchmarks/README.md, section 4,
``bench_compile.py --trace-only``): tracing and lowering the vmapped ROBER gradients of Rodas5P,
FBDF and KenCarp4 with four sensitivities took 25.6 s instead of 49.3 s, with bit-identical
gradients and run times the same within noise.

:func:`while_loop` is ``lax.while_loop`` with the carry's scalars stacked into one array per
dtype. XLA:CPU gives each value a loop carries a buffer of its own, computes each in a kernel
of its own and copies each one that a loop starts from a constant into place, one operation
each. Newton's loops (:mod:`pystiffsens.solvers.newton`), which start six counters and flags
from constants, use it, and so does the step loop of :mod:`pystiffsens.integrate` where it
carries no large buffers (benchmarks/README.md, section 6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_batching import custom_vmap


def tree_where(cond, a, b):
    """``jnp.where(cond, a, b)`` leaf by leaf over two pytrees of the same structure."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(cond, x, y), a, b)


@custom_vmap
def any_lane(flag):
    """``flag`` itself; under ``vmap``, whether *any* lane's flag is set (an unbatched value).

    Used as the loop predicate so a vmapped ``while_loop`` never falls back to selecting
    its whole carry per lane; nested ``vmap``s reduce level by level.
    """
    return flag


@any_lane.def_vmap
def _any_lane_rule(axis_size, in_batched, flag):
    (batched,) = in_batched
    return any_lane(jnp.any(flag, axis=0) if batched else flag), False


@jax.custom_jvp
def every_lane(tree):
    """``tree`` itself; under ``vmap``, with every leaf batched (an unbatched leaf is broadcast to the lanes).

    For the initial carry of a loop whose carry becomes batched anyway (see the module
    docstring). Only the primal values are batched: under ``jax.jvp`` the tangents pass
    through as they are, so a ``vmap`` whose lanes are tangents (``jax.jacfwd``) batches
    nothing here, and the values it returns unbatched (``has_aux``) stay so.
    """
    return _batched(tree)


def _every_lane_jvp(primals, tangents):
    (tree,), (tangent,) = primals, tangents
    return every_lane(tree), tangent


# Symbolic zeros pass through as they are: a loop's JVP then carries no tangent for what does not depend on the
# inputs being differentiated (the time, the step size, the counters), as without this function.
every_lane.defjvp(_every_lane_jvp, symbolic_zeros=True)


@custom_vmap
def _batched(tree):
    return tree


@_batched.def_vmap
def _batched_rule(axis_size, in_batched, tree):
    (batched,) = in_batched
    lanes = lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))
    return jax.tree_util.tree_map(lanes, tree, batched), jax.tree_util.tree_map(lambda _: True, tree)


def while_loop(cond, body, init):
    """``lax.while_loop(cond, body, init)`` with the scalars of the carry kept as one array per dtype (:class:`_Scalars`)."""
    scalars = _Scalars(init)
    out = lax.while_loop(lambda p: cond(scalars.unpack(p)), lambda p: scalars.pack(body(scalars.unpack(p))),
                         scalars.pack(init))
    return scalars.unpack(out)


class _Scalars:
    """Where the scalar leaves of a pytree go when they are stacked: integers and booleans into one
    array of the widest integer type, floating-point scalars into one array per dtype. Leaves
    keep their dtypes through :meth:`pack` and :meth:`unpack`; a dtype with one scalar is left alone."""

    def __init__(self, example):
        leaves, self.treedef = jax.tree_util.tree_flatten(example)
        self.dtypes = [jnp.result_type(x) for x in leaves]
        groups: dict = {}
        for i, (x, dtype) in enumerate(zip(leaves, self.dtypes)):
            if jnp.ndim(x) == 0:
                integer = jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_
                groups.setdefault(jnp.dtype(jnp.int_) if integer else dtype, []).append(i)
        self.groups = [(dtype, index) for dtype, index in groups.items() if len(index) > 1]
        self.stacked = {i for _, index in self.groups for i in index}

    def pack(self, tree):
        leaves = self.treedef.flatten_up_to(tree)
        stacks = [jnp.stack([jnp.asarray(leaves[i]).astype(dtype) for i in index]) for dtype, index in self.groups]
        return stacks, [x for i, x in enumerate(leaves) if i not in self.stacked]

    def unpack(self, packed):
        stacks, rest = packed
        leaves = [None] * len(self.dtypes)
        for (dtype, index), stack in zip(self.groups, stacks):
            for j, i in enumerate(index):
                leaves[i] = stack[j].astype(self.dtypes[i])
        others = iter(rest)
        leaves = [next(others) if i not in self.stacked else x for i, x in enumerate(leaves)]
        return self.treedef.unflatten(leaves)


def while_any(lane_running, body, carry):
    """``lax.while_loop`` for small carries: loop while any lane runs, each lane masked.

    ``lane_running(carry)`` is the per-lane predicate; lanes that are done keep their
    carry. Use it for loops whose carry holds no long buffers (those need masked writes,
    as in :func:`pystiffsens.integrate.integrate`).
    """

    def masked(c):
        return tree_where(lane_running(c), body(c), c)

    return lax.while_loop(lambda c: any_lane(lane_running(c)), masked, every_lane(carry))
