"""float64 JAX: switched on globally by ``import pystiffsens``, or only inside its calls on request.

pystiffsens's solvers are written for float64 (tolerances down to 1e-13, Newton tests at
rounding level, the stiff Jacobians of chemistry). ``import pystiffsens`` therefore sets
JAX's ``jax_enable_x64``, which changes the default dtype of every JAX array the process
creates afterwards. Set ``PYSTIFFSENS_NO_GLOBAL_X64=1`` to keep your JAX in its own
precision: pystiffsens then switches float64 on only for the duration of its own calls
(:func:`float64`, on ``pss.solve``, ``pss.gradient``, ``pss.make_gradient_fn`` and its
function, ``pss.sweep``, the stiffness and training entry points and the CLI), and returns
float64 NumPy results. A solve inside your own ``jax.jit``/``jax.grad`` then needs float64
around that transformation: trace it under ``with jax.enable_x64(True):``.
"""

from __future__ import annotations

import functools

import jax

from ._env import switched_on

DISABLE_VARIABLE = "PYSTIFFSENS_NO_GLOBAL_X64"


def enable() -> bool:
    """Switch float64 on for the process unless :data:`DISABLE_VARIABLE` is set; whether it did."""
    if switched_on(DISABLE_VARIABLE):
        return False
    jax.config.update("jax_enable_x64", True)
    return True


def float64(fn):
    """``fn`` run with float64 JAX (a no-op where float64 is on already)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if jax.config.jax_enable_x64:  # type: ignore[attr-defined]
            return fn(*args, **kwargs)
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((args, kwargs))):
            raise RuntimeError(
                f"pystiffsens computes in float64, but this JAX transformation traces in float32 (${DISABLE_VARIABLE} "
                f"is set). Trace it under `with jax.enable_x64(True):`, or unset {DISABLE_VARIABLE}."
            )
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return run
