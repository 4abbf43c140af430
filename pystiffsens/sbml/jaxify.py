"""sympy expressions to JAX functions, and programs that evaluate named quantities in dependency order.

Expressions are turned into Python functions by sympy's own ``lambdify(..., modules="jax")``
(sympy's JAX printer): ``Piecewise`` becomes ``jax.numpy.select`` (differentiable in the
selected branch), relations and logic become ``jax.numpy.less``/``logical_and``/...
Arguments are dummified, so no SBML id can shadow a name of the generated code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax.numpy as jnp
import sympy


def to_jax(expr, symbols: Sequence) -> Callable:
    """``f(*values)``: ``expr`` evaluated with ``jax.numpy`` (float64) at values given in the order of ``symbols``.

    ``expr`` is a sympy expression (or anything ``sympy.sympify`` takes); ``symbols`` are sympy
    symbols or names. Symbols are matched by name, so symbols carrying assumptions (PEtab's
    ``real=True`` ones) match plain ones. A free symbol of ``expr`` not in ``symbols`` is a
    ``ValueError``. The result is jax-traceable (``jit``, ``vmap``, ``grad``).
    """
    expr = sympy.sympify(expr)
    symbols = [s if isinstance(s, sympy.Symbol) else sympy.Symbol(str(s)) for s in symbols]
    by_name = {s.name: s for s in symbols}
    free = {s.name: s for s in expr.free_symbols}
    missing = sorted(set(free) - set(by_name))
    if missing:
        raise ValueError(
            f"to_jax: the expression {expr} has free symbols {missing} that are not among the "
            f"symbols {sorted(by_name)}."
        )
    expr = expr.xreplace({free[name]: by_name[name] for name in free})
    fn = sympy.lambdify(symbols, expr, modules="jax", dummify=True)
    return lambda *values: jnp.asarray(fn(*values), dtype=jnp.float64)


@dataclasses.dataclass(frozen=True)
class Definition:
    """A named quantity's formula: ``fn(*values of deps)``."""

    fn: Callable
    deps: tuple[str, ...]

    @classmethod
    def of(cls, expr: sympy.Basic) -> Definition:
        deps = tuple(sorted(s.name for s in expr.free_symbols))
        return cls(to_jax(expr, deps), deps)


class Program:
    """Evaluates ``outputs`` from the values of ``bases``, computing the ``definitions`` they need in dependency order.

    A base shadows a definition of the same name (a value supplied by the caller wins).
    Unknown names and cyclic definitions are ``ValueError``s that name them and ``source``.
    """

    def __init__(
        self,
        definitions: Mapping[str, Definition],
        bases: Iterable[str],
        outputs: Sequence[sympy.Basic],
        source: str,
        what: str,
    ):
        self.bases = frozenset(bases)
        self.outputs = [Definition.of(sympy.sympify(out)) for out in outputs]
        order: list[str] = []
        state: dict[str, str] = {}  # name -> "visiting" | "done"
        used_bases: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in self.bases:
                used_bases.add(name)
                return
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = " -> ".join((*path[path.index(name) :], name))
                raise ValueError(f"{source}: the definitions of {what} form a cycle: {cycle}.")
            if name not in definitions:
                raise ValueError(f"{source}: {what} uses {name!r}, which is neither a model id nor a given value.")
            state[name] = "visiting"
            for dep in definitions[name].deps:
                visit(dep, (*path, name))
            state[name] = "done"
            order.append(name)

        for out in self.outputs:
            for dep in out.deps:
                visit(dep, ())
        self.steps = [(name, definitions[name]) for name in order]
        self.used_bases = frozenset(used_bases)

    def __call__(self, env: Mapping[str, object]) -> list:
        values = dict(env)
        for name, definition in self.steps:
            values[name] = definition.fn(*(values[d] for d in definition.deps))
        return [out.fn(*(values[d] for d in out.deps)) for out in self.outputs]
