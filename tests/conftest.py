"""Shared test setup: float64 JAX via the package import, fast compilation, and common problems."""

import os

# XLA:CPU's elemental emitters, and no while-loop invariant code motion: the suite spends most of
# its time compiling, and this shortens it (pystiffsens/_xla.py). Set before anything compiles,
# and inherited by the processes the tests start (CLI runs, Dask workers).
# tests/test_scaling.py checks that the default options give the same gradients.
os.environ.setdefault("PYSTIFFSENS_FAST_COMPILE", "1")
# The elemental emitters also for what the tests compile with plain jax.jit (their own compositions of
# pss.solve, training loops): XLA reads XLA_FLAGS when JAX starts its CPU backend. Options that pss.jit
# passes take precedence, so the comparison with the default options asks for the fusion emitters.
os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), "--xla_cpu_use_fusion_emitters=false"]))

import pystiffsens  # noqa: E402, F401  (switches JAX to float64)

ADAPTIVE = ["Rodas4", "Rodas5P", "KenCarp4", "FBDF"]
FIXED = ["ImplicitEuler", "Trapezoid", "BDF2"]
ALL_SOLVERS = ADAPTIVE + FIXED
# One solver of each stepper implementation: Rosenbrock, ESDIRK (adaptive, fixed-step), BDF
# (adaptive, fixed-step), fully implicit Runge-Kutta, exponential. The families that pair a
# solver with every sensitivity run these; a method added to a family runs the same code
# (its own sensitivities are in tests/test_methods.py, test_firk.py, test_exponential.py).
# The step of each fixed-step method in the pair families on linear_modes (t in [0, 1]).
FIXED_DT = {"ImplicitEuler": 1e-3, "Trapezoid": 1e-2, "BDF2": 1e-2, "LawsonEuler": 2e-3}
STEPPER_FAMILIES = ["Rodas5P", "KenCarp4", "FBDF", "RadauIIA5", "ImplicitEuler", "BDF2", "LawsonEuler"]


def equations(jaxpr):
    """Every equation of ``jaxpr`` and of the jaxprs inside it (branches, loop bodies, calls, custom rules)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for item in value if isinstance(value, (tuple, list)) else [value]:
                inner = getattr(item, "jaxpr", item)
                if hasattr(inner, "eqns"):
                    yield from equations(inner)
