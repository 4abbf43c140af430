"""sympy expressions to JAX functions, and programs that evaluate named quantities in dependency order.

Expressions are turned into Python functions by sympy's own ``lambdify(..., modules="jax")``
(sympy's JAX printer): ``Piecewise`` becomes ``jax.numpy.select`` (differentiable in the
selected branch), relations and logic become ``jax.numpy.less``/``logical_and``/...
Arguments are dummified, so no SBML id can shadow a name of the generated code.

A :class:`Program` evaluates a model's named quantities in one of two layouts (``layout=``):

* ``"scalar"``: one JAX operation per operation of each formula, as written. XLA:CPU fuses
  such straight-line code into a few kernels, so it runs fastest; but a solver traces and
  differentiates it at every stage of every step, so tracing and compiling grow with the
  number of reactions and rules.
* ``"vectorised"``: the quantities of one dependency level that share a shape (mass action
  ``k*A*B``, Michaelis-Menten, ...) are computed together by one function of gathered
  arguments, and sums of ``number * quantity`` terms (a species' stoichiometry times rates)
  by one scatter-add. Each level reads all its arguments with one gather. The program then
  has a size set by the number of shapes, not of reactions, and compiles in less time;
  XLA:CPU runs its gathers and scatters as separate kernels, so it runs slower.

``benchmarks/README.md`` section 8 has the measurements.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import sympy
from jax import lax

NAN_TO = sympy.Function("nan_to")
"""``nan_to(raw, fallback)``: ``fallback`` where ``raw`` is NaN, else ``raw`` (a caller's value that overrides an initial assignment)."""

_NAMESPACE = {"nan_to": lambda raw, fallback: jnp.where(jnp.isnan(raw), fallback, raw)}


def _lambdify(symbols: Sequence[sympy.Symbol], expr: sympy.Basic) -> Callable:
    return sympy.lambdify(symbols, expr, modules=[_NAMESPACE, "jax"], dummify=True)


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
    fn = _lambdify(symbols, expr)
    return lambda *values: jnp.asarray(fn(*values), dtype=jnp.float64)


@dataclasses.dataclass(frozen=True)
class Definition:
    """A named quantity's formula ``expr``, a sympy expression of the names ``deps``."""

    expr: sympy.Basic
    deps: tuple[str, ...]

    @functools.cached_property
    def fn(self) -> Callable:
        """``fn(*values of deps)``: ``expr`` as a JAX function (lambdified on first use)."""
        return to_jax(self.expr, self.deps)

    @classmethod
    def of(cls, expr) -> Definition:
        expr = sympy.sympify(expr)
        return cls(expr, tuple(sorted(s.name for s in expr.free_symbols)))


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
        layout: str = "scalar",
    ):
        self.layout = layout  # a key of LAYOUTS (checked by sbml.Model)
        self.what = what  # what the program computes, for messages ("the right-hand side")
        self.bases = frozenset(bases)
        self.outputs = [Definition.of(out) for out in outputs]
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
        self._plans: dict[tuple[str, ...], Callable] = {}

    def dependence(self, names: Sequence[str]) -> np.ndarray:
        """``mask[k, j]``: output ``k`` depends on the base ``names[j]``, directly or through definitions.

        Structural: every name a formula mentions counts, in every branch of a piecewise.
        """
        column = {name: j for j, name in enumerate(names)}
        reaches: dict[str, np.ndarray] = {}

        def of(deps) -> np.ndarray:
            row = np.zeros(len(names), dtype=bool)
            for dep in deps:
                if dep in column and dep in self.bases:
                    row[column[dep]] = True
                elif dep in reaches:
                    row |= reaches[dep]
            return row

        for name, definition in self.steps:
            reaches[name] = of(definition.deps)
        return np.array([of(out.deps) for out in self.outputs]).reshape(len(self.outputs), len(names))

    def __call__(self, env: Mapping[str, object], block: tuple[Sequence[str], object] | None = None, scalars=None):
        """The outputs' values, stacked: shape ``(len(outputs), *batch)``.

        ``env`` maps base names to values (scalars, or arrays of one common batch shape);
        ``block = (names, vector)`` gives the bases ``names`` at once as the leading axis of
        ``vector`` (a model's state), instead of one entry of ``env`` each. In the vectorised
        layout ``scalars`` may give all the other bases the program reads at once, as one array
        in the order of :meth:`scalar_names` (``env`` is then not read).
        """
        return self._plan(block)(env, None if block is None else block[1], scalars)

    def scalar_names(self, block: Sequence[str]) -> tuple[str, ...]:
        """The bases, other than ``block``'s, that the vectorised layout reads, in the order of ``scalars``."""
        plan = self._plan((block, None))
        if not isinstance(plan, _VectorPlan):
            raise ValueError(f"the {self.layout} layout takes its bases by name, not as one array")
        return plan.scalars

    def _plan(self, block):
        names = tuple(block[0]) if block is not None else ()
        if names not in self._plans:
            self._plans[names] = LAYOUTS[self.layout](self.steps, self.outputs, self.used_bases, names)
        return self._plans[names]


# -- the scalar plan ----------------------------------------------------------------------


class _ScalarPlan:
    """Each definition evaluated as its own formula, one scalar at a time, in dependency order."""

    def __init__(self, steps, outputs, used_bases, block: tuple[str, ...]):
        self.block = block
        self.steps = [(name, d.fn, d.deps) for name, d in steps]
        self.outputs = [(out.fn, out.deps) for out in outputs]

    def __call__(self, env: Mapping[str, object], vector, scalars=None) -> jax.Array:
        if scalars is not None:
            raise ValueError("the scalar layout takes its bases by name, not as one array")
        values = dict(env)
        if self.block:
            # One split, not one slice per entry: a slice's transpose pads its cotangent to the whole
            # vector, and reverse mode summed one such vector per entry and right-hand side evaluation.
            parts = lax.split(jnp.asarray(vector, dtype=jnp.float64), [1] * len(self.block))
            values.update({name: jnp.squeeze(part, 0) for name, part in zip(self.block, parts, strict=True)})
        for name, fn, deps in self.steps:
            values[name] = fn(*(values[d] for d in deps))
        outs = [fn(*(values[d] for d in deps)) for fn, deps in self.outputs]
        batch = np.broadcast_shapes(*(jnp.shape(o) for o in outs))
        return jnp.stack([jnp.broadcast_to(o, batch) for o in outs])


# -- the vectorised plan ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Group:
    """Quantities of one level and one shape: ``fn(*gathered, *constants)`` at once."""

    fn: Callable
    gathers: tuple[np.ndarray, ...]  # per symbol slot, the positions of its values in the value vector
    constants: tuple[np.ndarray, ...]  # per number slot, its value in each quantity
    size: int


@dataclasses.dataclass(frozen=True)
class _Linear:
    """Linear combinations of values: ``out[rows[k]] += values[columns[k]] * coefficients[k]``."""

    columns: np.ndarray
    coefficients: np.ndarray
    rows: np.ndarray
    size: int


@dataclasses.dataclass(frozen=True)
class _Level:
    linear: _Linear | None
    groups: tuple[_Group, ...]

    @functools.cached_property
    def reads(self) -> tuple[np.ndarray, list[int]]:
        """``(positions, sizes)``: the positions of every value the level reads (the linear combinations' columns,
        then each group's slots in order) and how many each of those reads takes."""
        parts = [self.linear.columns] if self.linear is not None else []
        parts += [positions for group in self.groups for positions in group.gathers]
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=int)), [part.size for part in parts]


class _VectorPlan:
    """A program laid out as levels of vectorised operations on one growing vector of values.

    The vector starts with the bases (the block, then the other used bases by name); each level
    appends its linear combinations, then its groups of one shape.
    """

    def __init__(self, steps, outputs, used_bases, block: tuple[str, ...]):
        self.block = block
        self.scalars = tuple(sorted(set(used_bases) - set(block)))
        position = {name: i for i, name in enumerate(block + self.scalars)}
        level = dict.fromkeys(position, 0)
        combinations: dict[tuple, str] = {}  # ((name, coefficient), ...) -> the node computing it
        by_level: dict[int, list[tuple[str, object]]] = {}  # level -> (node, expression or combination)

        def add(name: str, payload, deps) -> None:
            level[name] = 1 + max((level[d] for d in deps), default=0)
            by_level.setdefault(level[name], []).append((name, payload))

        def extract_linear(expr: sympy.Basic) -> sympy.Basic:
            """``expr`` with each sum of ``number * name`` terms replaced by the name of a node computing it."""
            terms = _linear_terms(expr)
            if terms is not None:
                if terms not in combinations:
                    combinations[terms] = f"@linear:{len(combinations)}"
                    add(combinations[terms], terms, [name for name, _ in terms])
                return sympy.Symbol(combinations[terms])
            if not expr.args or isinstance(expr, sympy.Symbol):
                return expr
            return expr.func(*(extract_linear(arg) for arg in expr.args))

        def add_expression(name: str, expr: sympy.Basic) -> None:
            expr = extract_linear(expr)
            add(name, expr, [s.name for s in expr.free_symbols])

        for name, definition in steps:
            add_expression(name, definition.expr)
        output_names = []
        for k, out in enumerate(outputs):
            if isinstance(out.expr, sympy.Symbol):
                output_names.append(out.expr.name)
            else:
                output_names.append(f"@output:{k}")
                add_expression(output_names[-1], out.expr)

        self.levels = []
        for lv in sorted(by_level):
            nodes = by_level[lv]
            combos = [(name, terms) for name, terms in nodes if isinstance(terms, tuple)]
            linear = None
            if combos:
                entries = [(row, position[dep], c) for row, (_, terms) in enumerate(combos) for dep, c in terms]
                rows, columns, coefficients = (np.array(column) for column in zip(*entries))
                linear = _Linear(columns, coefficients.astype(np.float64), rows, len(combos))
                for name, _ in combos:
                    position[name] = len(position)
            shapes: dict[sympy.Basic, list] = {}
            for name, expr in nodes:
                if not isinstance(expr, tuple):
                    skeleton, symbols, constants = _skeleton(expr)
                    shapes.setdefault(skeleton, []).append((name, symbols, constants))
            groups = []
            for skeleton, members in shapes.items():
                n_symbols, n_constants = len(members[0][1]), len(members[0][2])
                slots = [sympy.Symbol(f"s{i}") for i in range(n_symbols)]
                slots += [sympy.Symbol(f"c{i}") for i in range(n_constants)]
                gathers = tuple(np.array([position[m[1][i]] for m in members]) for i in range(n_symbols))
                constants = tuple(np.array([m[2][i] for m in members], dtype=np.float64) for i in range(n_constants))
                for name, *_ in members:
                    position[name] = len(position)
                groups.append(_Group(_lambdify(slots, skeleton), gathers, constants, len(members)))
            self.levels.append(_Level(linear, tuple(groups)))
        self.outputs = np.array([position[name] for name in output_names], dtype=int)

    def __call__(self, env: Mapping[str, object], vector, scalars=None) -> jax.Array:
        block = [jnp.asarray(vector, dtype=jnp.float64)] if self.block else []
        if scalars is None:
            each = [jnp.asarray(env[name], dtype=jnp.float64) for name in self.scalars]
            batch = np.broadcast_shapes(*(s.shape for s in each), *(b.shape[1:] for b in block))
            scalars = jnp.stack([s if s.shape == batch else jnp.broadcast_to(s, batch) for s in each]) if each else None
        else:
            batch = np.broadcast_shapes(scalars.shape[1:], *(b.shape[1:] for b in block))
            scalars = scalars if scalars.shape[1:] == batch else jnp.broadcast_to(scalars, scalars.shape[:1] + batch)
        parts = [b if b.shape[1:] == batch else jnp.broadcast_to(b, b.shape[:1] + batch) for b in block]
        if scalars is not None and self.scalars:
            parts.append(scalars)
        values = jnp.concatenate(parts) if parts else jnp.zeros((0, *batch))
        trailing = (1,) * len(batch)
        for lv in self.levels:
            # One read of all the level's arguments, then one split: reverse mode then adds one cotangent (one
            # scatter-add) to the values per level, not one per gathered argument.
            positions, sizes = lv.reads
            read = iter(lax.split(_take(values, positions), sizes) if sizes else ())
            new = []
            if lv.linear is not None:
                lin = lv.linear
                products = next(read) * lin.coefficients.reshape(-1, *trailing)
                new.append(_sum_rows(products, lin.rows, lin.size))
            for group in lv.groups:
                args = [next(read) for _ in group.gathers]
                args += [c.reshape(-1, *trailing) for c in group.constants]
                out = jnp.asarray(group.fn(*args), dtype=jnp.float64)
                new.append(out if out.shape == (group.size, *batch) else jnp.broadcast_to(out, (group.size, *batch)))
            values = jnp.concatenate([values, *new])
        return _take(values, self.outputs)


LAYOUTS: dict[str, Callable] = {"scalar": _ScalarPlan, "vectorised": _VectorPlan}
"""The program layouts by name (module docstring)."""


def _take(values, positions: np.ndarray):
    """``values[positions]`` along the first axis, as one slice or one gather (the positions are known)."""
    start = int(positions[0]) if positions.size else 0
    if np.array_equal(positions, np.arange(start, start + positions.size)):
        return lax.slice_in_dim(values, start, start + positions.size)
    return lax.gather(
        values,
        positions.astype(np.int32)[:, None],
        lax.GatherDimensionNumbers(
            offset_dims=tuple(range(1, values.ndim)), collapsed_slice_dims=(0,), start_index_map=(0,)
        ),
        slice_sizes=(1, *values.shape[1:]),
        mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS,
    )


def _sum_rows(products, rows: np.ndarray, size: int):
    """``out[r] = sum of products[k] with rows[k] == r``, ``r < size`` (``rows`` sorted)."""
    return lax.scatter_add(
        jnp.zeros((size, *products.shape[1:]), dtype=products.dtype),
        rows.astype(np.int32)[:, None],
        products,
        lax.ScatterDimensionNumbers(
            update_window_dims=tuple(range(1, products.ndim)),
            inserted_window_dims=(0,),
            scatter_dims_to_operand_dims=(0,),
        ),
        indices_are_sorted=True,
        mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS,
    )


def _linear_terms(expr: sympy.Basic) -> tuple[tuple[str, float], ...] | None:
    """``((name, coefficient), ...)`` of a sum of at least two terms ``number * symbol``, else None."""
    if not isinstance(expr, sympy.Add) or len(expr.args) < 2:
        return None
    terms = []
    for term in expr.args:
        if isinstance(term, sympy.Symbol):
            terms.append((term.name, 1.0))
        elif (
            isinstance(term, sympy.Mul)
            and len(term.args) == 2
            and isinstance(term.args[0], sympy.Number)
            and isinstance(term.args[1], sympy.Symbol)
        ):
            terms.append((term.args[1].name, float(term.args[0])))
        else:
            return None
    return tuple(sorted(terms))


def _skeleton(expr: sympy.Basic) -> tuple[sympy.Basic, list[str], list[float]]:
    """``expr``'s shape: its symbols renamed ``s0, s1, ...`` and its numbers ``c0, c1, ...`` in order of appearance.

    Exponents that are numbers stay in the shape (``x**2`` stays an integer power). Returns the
    shape, the names of the symbols and the values of the numbers.
    """
    symbols: dict[str, sympy.Symbol] = {}
    constants: list[float] = []

    def rebuild(e: sympy.Basic) -> sympy.Basic:
        if isinstance(e, sympy.Symbol):
            if e.name not in symbols:
                symbols[e.name] = sympy.Symbol(f"s{len(symbols)}")
            return symbols[e.name]
        if isinstance(e, sympy.Number):
            constants.append(float(e))
            return sympy.Symbol(f"c{len(constants) - 1}")
        if isinstance(e, sympy.Pow) and isinstance(e.exp, sympy.Number):
            return sympy.Pow(rebuild(e.base), e.exp)
        if not e.args:
            return e
        return e.func(*(rebuild(arg) for arg in e.args))

    shape = rebuild(expr)
    return shape, list(symbols), constants
