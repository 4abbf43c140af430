"""The problem definition shared by every solver, sensitivity and backend."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _params, _validation
from .results import flatten_params
from .sparsity import Sparsity

StiffnessKnob = str | Callable[[Any, Any], Any] | None

#: Problem structures whose functions have been checked (see :func:`_check_functions`); bounded.
_CHECKED: dict = {}
_CHECKED_MAX = 512


def final_state_sum(ts, ys, p):
    """Default loss: the sum of the last saved state."""
    return jnp.sum(ys[-1])


@dataclasses.dataclass(frozen=True)
class SplitRHS:
    """A right-hand side given as a stiff and a non-stiff part, ``f = stiff + nonstiff``.

    Pass it as a problem's ``rhs``. Implicit–explicit (IMEX) methods treat ``stiff``
    implicitly and ``nonstiff`` explicitly: KenCarp4 runs as the additive Runge–Kutta pair it
    was built as (Kennedy & Carpenter, Appl. Numer. Math. 44 (2003) 139–181), as on SciML's
    ``SplitODEProblem(stiff, nonstiff, ...)`` and diffrax's ``MultiTerm``. The exponential
    integrators (LawsonEuler, ETDRK4) take their linear part from the Jacobian of ``stiff``
    (``L(p)`` itself when ``stiff`` is ``L(p) y``). Every other method, and every sensitivity's
    augmented system (forward sensitivities, the adjoints' backward solve), use the sum (a
    solver's ``splits`` says which). Both parts are ``(t, y, p) -> array`` of ``y``'s shape.

    Two splits of the same two functions are equal, so problems rebuilt from them share
    compiled programs.
    """

    stiff: Callable
    nonstiff: Callable

    def __post_init__(self):
        for part in ("stiff", "nonstiff"):
            if not callable(getattr(self, part)):
                raise ValueError(f"SplitRHS: {part}={getattr(self, part)!r} must be a function (t, y, p) -> array.")

    def __call__(self, t, y, p):
        return self.stiff(t, y, p) + self.nonstiff(t, y, p)

    @property
    def __name__(self) -> str:
        return getattr(self.stiff, "__name__", "split")


@dataclasses.dataclass(frozen=True)
class SparseRHS:
    """A right-hand side whose Jacobian ``df/dy`` is zero outside a known pattern.

    Pass it as a problem's ``rhs`` (or as a part of a :class:`SplitRHS`). Every implicit
    method then forms its Jacobians with one forward-mode product per group of columns that
    share no row, instead of one per state (:mod:`pystiffsens.sparsity`; Curtis, Powell &
    Reid 1974), as SciML's ``ODEFunction(f; jac_prototype=...)`` and scipy's
    ``solve_ivp(jac_sparsity=...)`` do; the continuous adjoints use the transposed pattern.
    The pattern must hold every entry that can ever be nonzero: entries outside it are taken
    as zero. SBML models give theirs (:attr:`pystiffsens.sbml.Model.jacobian_sparsity`).

    Parameters
    ----------
    fn : ``(t, y, p) -> dy/dt``.
    jac_sparsity : an ``n x n`` boolean array (or 0/1, or a scipy sparse matrix), True where
        ``df_i/dy_j`` may be nonzero; or a :class:`pystiffsens.sparsity.Sparsity`.
    """

    fn: Callable
    jac_sparsity: Sparsity

    def __post_init__(self):
        if not callable(self.fn):
            raise ValueError(f"SparseRHS: fn={self.fn!r} must be a function (t, y, p) -> array.")
        if not isinstance(self.jac_sparsity, Sparsity):
            object.__setattr__(self, "jac_sparsity", Sparsity(self.jac_sparsity))

    def __call__(self, t, y, p):
        return self.fn(t, y, p)

    @property
    def __name__(self) -> str:
        return getattr(self.fn, "__name__", "sparse")


def sparsity_of(fn) -> Sparsity | None:
    """The Jacobian sparsity pattern a right-hand side carries (a :class:`SparseRHS`), else None."""
    return fn.jac_sparsity if isinstance(fn, SparseRHS) else None


def _rhs_parts(rhs) -> dict[str, Callable]:
    """The functions a right-hand side is made of, by label: a :class:`SplitRHS`'s two parts, else itself."""
    if isinstance(rhs, SplitRHS):
        return {"rhs.stiff": rhs.stiff, "rhs.nonstiff": rhs.nonstiff}
    return {"rhs": rhs}


def with_params(rhs, params_of: Callable, names: tuple[str, ...] | None = None):
    """``(t, y, th) -> rhs(t, y, params_of(th))``, keeping a :class:`SplitRHS`'s parts and a :class:`SparseRHS`'s pattern.

    Where the parameters are a dict of scalars whose keys ``names`` are the entries of ``th``, a
    right-hand side with an ``of_vector(names)`` method (an SBML model's) is called with ``th``
    itself through the function that method returns (when not None), without ``params_of``.
    """
    if isinstance(rhs, SplitRHS):
        return SplitRHS(with_params(rhs.stiff, params_of, names), with_params(rhs.nonstiff, params_of, names))
    if isinstance(rhs, SparseRHS):
        return SparseRHS(with_params(rhs.fn, params_of, names), rhs.jac_sparsity)
    of_vector = getattr(rhs, "of_vector", None)
    direct = of_vector(names) if of_vector is not None and names is not None else None
    return direct if direct is not None else (lambda t, y, th: rhs(t, y, params_of(th)))


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A parameterised initial-value problem ``y' = rhs(t, y, p)``, ``y(t0) = y0``.

    Parameters
    ----------
    rhs : callable ``(t, y, p) -> dy/dt`` written with ``jax.numpy``, or a :class:`SplitRHS`
        (a stiff and a non-stiff part, for implicit–explicit methods).
    y0 : initial state, 1-D.
    tspan : ``(t0, t1)`` with ``t0 < t1``.
    params : the parameters ``p``: a dict of named scalars and arrays, or any pytree (nested
        dicts and lists, an equinox module). Its real leaves are converted to float64 and
        differentiated; other leaves (functions, strings) are structure (:mod:`pystiffsens._params`).
    loss : callable ``(ts, ys, p) -> scalar`` on the states saved at ``saveat``. Default: the
        sum of the final state.
    saveat : increasing times in ``[t0, t1]`` at which states are saved (and which the
        integrator steps onto exactly); a time equal to ``t0`` saves ``y0``. Default: ``[t1]``.
    stiffness : the parameter name a stiffness value sets (a key of a dict ``params`` whose
        value is a scalar), or a callable ``(params, s) -> params`` (which may set one entry of
        an array parameter).
    name : label used in frames and reports.
    exact_solution : optional ``(t, p) -> y(t)`` in closed form (JAX); exact parameter
        sensitivities are then obtained by differentiating it.
    implementations : the same model for other backends, by backend name: ``{"julia":
        source}`` with Julia source defining ``rhs(u, p, t)`` (and ``loss``), see
        :mod:`pystiffsens.backends.julia`.

    A problem is a JAX pytree (``y0``, ``params`` and ``saveat`` are its leaves), and may hold
    traced values of them: ``problem.replace(params=traced)`` inside a transformation.
    """

    rhs: Callable
    y0: Any
    tspan: tuple[float, float]
    params: Any
    loss: Callable | None = None
    saveat: Any = None
    stiffness: StiffnessKnob = None
    name: str | None = None
    exact_solution: Callable | None = None
    implementations: Mapping[str, str] | None = None
    description: str = ""

    def __post_init__(self):
        if not callable(self.rhs):
            raise ValueError(f"rhs={self.rhs!r} must be a function (t, y, p) -> dy/dt.")
        tspan = _validation.check_tspan(self.tspan)
        object.__setattr__(self, "tspan", tspan)
        leaves, structure = _params.split(self.params)
        object.__setattr__(self, "params", _params.ordered_like(self.params, structure.merge(leaves)))
        y0 = _params.promote(self.y0, "y0")
        if y0.ndim != 1 or y0.size == 0:
            raise ValueError(f"y0={self.y0!r} must be a non-empty 1-D array.")
        object.__setattr__(self, "y0", y0)
        for part in _rhs_parts(self.rhs).values():
            if isinstance(part, SparseRHS) and part.jac_sparsity.size != y0.size:
                raise ValueError(
                    f"the rhs's jac_sparsity is {part.jac_sparsity.size} x {part.jac_sparsity.size}, but y0 has "
                    f"{y0.size} entries; the pattern must be n x n for n states."
                )
        object.__setattr__(self, "saveat", _check_saveat(self.saveat, tspan))
        if isinstance(self.stiffness, str):
            if not isinstance(self.params, dict):
                raise ValueError(
                    f"stiffness={self.stiffness!r} names a parameter, which needs params to be a dict; with "
                    f"params of type {type(self.params).__name__} give a callable (params, s) -> params."
                )
            if self.stiffness not in self.params:
                raise ValueError(f"stiffness={self.stiffness!r} is not a parameter; valid names: {sorted(self.params)}.")
            _check_named_knob(self.stiffness, self.params)
        elif self.stiffness is not None and not callable(self.stiffness):
            raise ValueError(f"stiffness={self.stiffness!r} must be a parameter name, a callable or None.")
        if self.implementations is not None and not (
            isinstance(self.implementations, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in self.implementations.items())
        ):
            raise ValueError(
                f"implementations={self.implementations!r} must map backend names to source text, e.g. "
                "{'julia': julia_source}."
            )
        _check_functions(self, structure)

    # -- pytree: y0, params and saveat are leaves; no validation on unflattening (leaves may be tracers)
    def tree_flatten(self):
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        children = (fields.pop("y0"), fields.pop("params"), fields.pop("saveat"))
        if fields["implementations"] is not None:  # aux data must be hashable
            fields["implementations"] = tuple(sorted(fields["implementations"].items()))
        return children, tuple(fields.items())

    @classmethod
    def tree_unflatten(cls, aux, children):
        out = object.__new__(cls)
        for name, value in (*aux, *zip(("y0", "params", "saveat"), children)):
            object.__setattr__(out, name, dict(value) if name == "implementations" and value is not None else value)
        return out

    @property
    def loss_fn(self) -> Callable:
        return self.loss if self.loss is not None else final_state_sum

    @property
    def label(self) -> str:
        return str(self.name or getattr(self.rhs, "__name__", "problem"))

    def parameters(self) -> tuple[list, _params.Structure]:
        """``(parameter leaves as float64 arrays, structure)`` of ``params`` (see :mod:`pystiffsens._params`)."""
        return self._parameters

    @functools.cached_property
    def _parameters(self) -> tuple[list, _params.Structure]:
        return _params.split(self.params)

    @functools.cached_property
    def traced(self) -> bool:
        """Whether the problem holds traced values (one built inside a JAX transformation)."""
        leaves, _ = self.parameters()
        return any(isinstance(x, jax.core.Tracer) for x in (*leaves, self.y0, self.saveat))

    def set_stiffness(self, params, s):
        """Return ``params`` with the stiffness knob set to ``s`` (JAX-traceable)."""
        if self.stiffness is None:
            raise ValueError(f"Problem {self.label!r} has no stiffness knob; pass stiffness= when building it.")
        return apply_knob(self.stiffness, params, s)

    def knob_entries(self) -> tuple[str, ...]:
        """The scalar parameter entries (``lam``, ``k[9]``, as frames name them) the stiffness knob sets.

        Those whose value differs between stiffness 1 and 2, so a callable knob is covered too;
        none for a problem without a knob. Reports show them first; the CLI refuses an
        ``--option`` that sets one (the sweep would overwrite it).
        """
        if self.stiffness is None:
            return ()
        one = flatten_params(self.set_stiffness(self.params, 1.0))
        two = flatten_params(self.set_stiffness(self.params, 2.0))
        return tuple(name for name, value in one.items() if two.get(name) != value)

    def with_stiffness(self, s) -> Problem:
        return dataclasses.replace(self, params=self.set_stiffness(self.params, s))

    def replace(self, **changes) -> Problem:
        return dataclasses.replace(self, **changes)

    def exact_loss_and_grad(self, params=None):
        """Loss and parameter gradient (a pytree like ``params``) from the closed-form solution, or ``None``."""
        if self.exact_solution is None:
            return None
        leaves, structure = _params.split(self.params if params is None else params)
        ts = jnp.asarray(self.saveat)

        def exact_loss(leaves):
            p = structure.merge(leaves)
            ys = jax.vmap(lambda t: self.exact_solution(t, p))(ts)
            return self.loss_fn(ts, ys, p)

        value, grad = jax.value_and_grad(exact_loss)(leaves)
        return value, structure.fill(grad)


def apply_knob(knob, params, s):
    """``params`` with the stiffness knob ``knob`` (a parameter name or a callable) set to ``s`` (traceable)."""
    if isinstance(knob, str):
        return {**params, knob: jnp.asarray(s, dtype=jnp.float64)}
    return knob(params, s)


def _check_named_knob(knob: str, params: dict) -> None:
    """A stiffness knob given by name must name a scalar parameter: a sweep sets it to one value ``s``.

    (:func:`apply_knob` replaces the entry by that scalar, which would break an ``rhs`` that
    indexes an array parameter.)
    """
    shape = getattr(params[knob], "shape", None)  # parameter leaves are float64 arrays by now
    if shape == ():
        return
    held = f"of shape {tuple(shape)}" if shape is not None else f"holding a {type(params[knob]).__name__}"
    scalars = sorted(name for name, entry in params.items() if getattr(entry, "shape", None) == ())
    raise ValueError(
        f"stiffness={knob!r} names the parameter {knob!r} {held}, but a stiffness knob given by name must be a "
        f"scalar entry: a sweep sets it to one value s. Name a scalar parameter (scalar parameters: {scalars}), or "
        f"give a callable that sets one entry, e.g. stiffness=lambda p, s: {{**p, {knob!r}: p[{knob!r}].at[0].set(s)}}."
    )


def _check_saveat(saveat, tspan):
    if saveat is None:
        return jnp.asarray([tspan[1]], dtype=jnp.float64)
    if isinstance(saveat, jax.core.Tracer):
        if saveat.ndim != 1:
            raise ValueError(f"saveat must be a 1-D array of times, got shape {saveat.shape}.")
        return jnp.asarray(saveat, jnp.float64)
    arr = np.atleast_1d(np.asarray(saveat, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"saveat={saveat!r} must be a non-empty 1-D array of finite times.")
    if np.any(np.diff(arr) <= 0):
        raise ValueError(f"saveat={saveat!r} must be strictly increasing.")
    if arr[0] < tspan[0] or arr[-1] > tspan[1]:
        raise ValueError(f"saveat={saveat!r} must lie in [t0, t1] = [{tspan[0]}, {tspan[1]}].")
    return jnp.asarray(arr)


def _check_functions(problem: Problem, structure: _params.Structure) -> None:
    """Trace rhs, loss and the closed-form solution once per structure (``jax.eval_shape``); check the knob.

    ``ValueError`` naming the function and the fix when one reads a missing parameter, returns
    something other than one real array of the right shape (a tuple, a vector loss, complex
    or integer values), or a stiffness knob sets parameters that do not exist or changes none.
    A structure already checked (same functions, parameter structure and shapes) is not traced again.
    """
    key = (problem.rhs, problem.loss, problem.exact_solution, problem.stiffness, structure,
           tuple(problem.y0.shape), tuple(problem.saveat.shape))
    if key in _CHECKED:
        return
    params, merge = problem.params, structure.merge
    leaves = [jax.ShapeDtypeStruct(shape, jnp.float64) for shape in structure.shapes]
    t0 = jnp.float64(problem.tspan[0])
    y0 = jax.ShapeDtypeStruct(problem.y0.shape, jnp.float64)
    ts = jax.ShapeDtypeStruct(problem.saveat.shape, jnp.float64)
    # Only the parameter leaves are abstract; the rest of the pytree (functions, ...) is passed as it is.
    # each part of a SplitRHS alone: a sum would broadcast a wrong shape away
    for label, fn in _rhs_parts(problem.rhs).items():
        out = _validation.traced(f"{label}(t, y, p)", lambda t, y, p, fn=fn: fn(t, y, merge(p)), t0, y0, leaves,
                                 params=params)
        _check_array(f"{label}(t, y, p)", out, y0.shape, "the shape of y0")
    ys = jax.ShapeDtypeStruct((ts.shape[0], y0.shape[0]), jnp.float64)
    loss = _validation.traced("loss(ts, ys, p)", lambda t, y, p: problem.loss_fn(t, y, merge(p)), ts, ys, leaves,
                              params=params)
    if not isinstance(loss, jax.ShapeDtypeStruct) or loss.shape != ():
        raise ValueError(
            f"loss(ts, ys, p) must return a scalar, but returns {_describe(loss)}; reduce it, e.g. with jnp.sum(...)."
        )
    if problem.exact_solution is not None:
        exact = _validation.traced("exact_solution(t, p)", lambda t, p: problem.exact_solution(t, merge(p)), t0,
                                   leaves, params=params)
        _check_array("exact_solution(t, p)", exact, y0.shape, "the shape of y0")
    if problem.stiffness is not None and not isinstance(problem.stiffness, str):
        _check_knob(problem.stiffness, params, structure)
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED[key] = True


def _check_knob(knob, params, structure: _params.Structure) -> None:
    """A callable stiffness knob must return params of the same structure and shapes, and change some."""
    low = _validation.called("stiffness(params, s)", knob, params, 1.0, params=params)
    if jax.tree_util.tree_structure(low, is_leaf=lambda x: x is None) != structure.treedef:
        if isinstance(low, dict) and isinstance(params, dict):
            extra, lacking = sorted(set(low) - set(params)), sorted(set(params) - set(low))
            raise ValueError(
                f"stiffness(params, s) returns parameters {sorted(low)}: "
                + (f"{extra} not in params (a misspelt name?)" if extra else "")
                + ("; " if extra and lacking else "")
                + (f"{lacking} missing" if lacking else "")
                + f". It must set existing names only; valid names: {sorted(params)}, e.g. lambda p, s: {{**p, 'lam': s}}."
            )
        kind = "dict" if isinstance(params, dict) else "pytree"
        raise ValueError(
            f"stiffness(params, s) must return the params {kind} (same structure), but returns {_describe(low)}."
        )
    for path, value, expected in zip(_leaf_paths(low), jax.tree_util.tree_leaves(low),
                                     jax.tree_util.tree_leaves(params)):
        if np.shape(value) != np.shape(expected):
            name = _params.path_name(path)
            raise ValueError(
                f"stiffness(params, s) sets {name!r} to an array of shape {np.shape(value)}, but params {name!r} has "
                f"shape {np.shape(expected)}; keep each parameter's shape."
            )
    high = knob(params, 1e6)
    if all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
           zip(structure.leaves_of(low), structure.leaves_of(high))):
        raise ValueError(
            "stiffness(params, s) returns the same parameters for s=1 and s=1e6: it sets no parameter from s, so a "
            "sweep would not change the problem. Set a parameter from s."
        )


def _leaf_paths(tree) -> list:
    return [path for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _check_array(what: str, out, shape: tuple, expected: str) -> None:
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(
            f"{what} must return one array of shape {shape} ({expected}), but returns {_describe(out)}; "
            "build it with jnp.stack([...]) or jnp.array([...])."
        )
    if out.shape != shape:
        raise ValueError(f"{what.split('(')[0]} returns shape {out.shape} but y0 has shape {shape}; they must match.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(
            f"{what} returns {out.dtype} values; it must return real floating-point values (float64), "
            "e.g. jnp.asarray(..., dtype=float) or with real arithmetic."
        )


def _describe(value) -> str:
    """A short description of what a traced function returned."""
    if isinstance(value, jax.ShapeDtypeStruct):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"
