"""Parameters as any pytree: the float arrays are differentiated, every other leaf is structure.

A problem's ``params`` may be a dict of named arrays (the built-ins), nested dicts and lists,
or a module object such as an equinox ``Module``. Its leaves that are real numbers or real
arrays are *parameters*: converted to float64 and differentiated (as ``jax.grad`` treats
them). Every other leaf (an activation function inside an equinox module, None, a bool) is
static: part of the structure a compiled program is specialised to, like equinox's
``eqx.partition(params, eqx.is_inexact_array)``.

Entries are named for frames and reports by their path: ``k1``, ``k[3]``,
``net.layers[0].weight[1,2]``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _warnings

_LOW_PRECISION = ("float16", "bfloat16", "float32")
_warned_low_precision = False


@dataclasses.dataclass(frozen=True)
class Structure:
    """The static part of a parameter pytree: its tree, its non-parameter leaves and the parameters' shapes.

    Hashable, so it can key compiled programs; :meth:`merge` rebuilds the pytree from
    parameter leaves (arrays or tracers).
    """

    treedef: Any
    is_param: tuple[bool, ...]
    static: tuple  # the non-parameter leaves, in order
    shapes: tuple[tuple[int, ...], ...]

    def merge(self, leaves):
        """The pytree with ``leaves`` (one per parameter, in order) in the parameter positions."""
        params, static = iter(leaves), iter(self.static)
        return jax.tree_util.tree_unflatten(self.treedef, [next(params) if p else next(static) for p in self.is_param])

    @functools.cached_property
    def sizes(self) -> tuple[int, ...]:
        """Number of scalar entries of each parameter leaf."""
        return tuple(math.prod(shape) for shape in self.shapes)

    @functools.cached_property
    def offsets(self) -> tuple[int, ...]:
        """Where each parameter leaf starts in the raveled parameters, then their total size."""
        return tuple(itertools.accumulate(self.sizes, initial=0))

    @functools.cached_property
    def scalar_names(self) -> tuple[str, ...] | None:
        """The keys, in the raveled order, of a dict of scalar parameters with string keys; None for any other
        pytree."""
        if not all(self.is_param) or any(self.shapes):
            return None
        tree = self.merge(range(len(self.shapes)))
        if not (isinstance(tree, dict) and len(tree) == len(self.shapes) and all(isinstance(key, str) for key in tree)):
            return None  # not a dict, or a nested one
        return tuple(sorted(tree, key=tree.__getitem__))

    @property
    def size(self) -> int:
        """Number of scalar parameter entries."""
        return sum(self.sizes)

    def fill(self, leaves, static_value=None):
        """The pytree with ``leaves`` in the parameter positions and ``static_value`` in the others
        (a gradient: None where nothing is differentiated, as ``equinox.filter_grad`` gives)."""
        params = iter(leaves)
        return jax.tree_util.tree_unflatten(
            self.treedef, [next(params) if p else static_value for p in self.is_param]
        )

    def leaves_of(self, params) -> list:
        """The parameter leaves of a pytree of this structure (traceable; no conversion)."""
        flat = self.treedef.flatten_up_to(params)
        return [leaf for leaf, p in zip(flat, self.is_param) if p]


def _is_none(x) -> bool:
    return x is None


def split(params, what: str = "params", *, host: bool = False) -> tuple[list, Structure]:
    """``(parameter leaves as float64 arrays, structure)`` of a parameter pytree.

    ``ValueError`` naming the entry for complex or non-finite values; float32 and lower
    precision arrays are promoted to float64 with a warning (once per process). Float64 JAX
    arrays and tracers are kept as they are; other leaves become JAX arrays or, with
    ``host``, NumPy arrays: arguments for a compiled program, whose call moves them to the
    device (about 2 us a leaf, where ``jnp.asarray`` takes about 40 us).
    """
    try:
        flat, treedef = jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_none)
    except (TypeError, ValueError) as error:  # e.g. dict keys that cannot be sorted against each other
        keys = _unsortable_keys(params)
        detail = (
            f"a dict has keys of different types, {keys!r}, which JAX cannot sort" if keys is not None else str(error)
        )
        raise ValueError(
            f"{what} cannot be flattened as a pytree ({detail}); give dicts keys of one type, e.g. strings."
        ) from None
    leaves, flags, static, shapes = [], [], [], []
    for path, leaf in flat:
        if _is_parameter(leaf, path, what):
            value = _as_float64(leaf, path, what, host)
            leaves.append(value)
            shapes.append(tuple(value.shape))
            flags.append(True)
        else:
            static.append(leaf)
            flags.append(False)
    structure = Structure(treedef, tuple(flags), tuple(static), tuple(shapes))
    try:
        hash(structure)
    except TypeError:
        bad = next(leaf for leaf in static if not _hashable(leaf))
        raise ValueError(
            f"{what} holds {bad!r}, which is neither a real number or array (a parameter) nor hashable "
            "(structure a compiled program can depend on)."
        ) from None
    return leaves, structure


def _unsortable_keys(tree):
    """The keys of the first dict in ``tree`` (nested dicts, lists and tuples) that cannot be
    sorted against each other, e.g. ``[1, 'a']``; None if there is none."""
    if isinstance(tree, dict):
        try:
            sorted(tree)
        except TypeError:
            return list(tree)
        children = list(tree.values())
    elif isinstance(tree, (list, tuple)):
        children = list(tree)
    else:
        return None
    return next((keys for keys in map(_unsortable_keys, children) if keys is not None), None)


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _is_parameter(leaf, path, what: str) -> bool:
    if isinstance(leaf, (str, bytes)):
        raise ValueError(
            f"{what}{jax.tree_util.keystr(path)}={leaf!r} must be a real number or array of real numbers "
            "(other leaves, such as the activation function of a network, are kept as structure)."
        )
    if leaf is None or isinstance(leaf, (bool, np.bool_)):
        return False
    if isinstance(leaf, (int, float, np.integer, np.floating)):
        return True
    dtype = np.dtype(type(leaf)) if isinstance(leaf, complex) else getattr(leaf, "dtype", None)
    if dtype is None:
        return False
    kind = np.dtype(dtype).kind
    if kind == "c":
        raise ValueError(
            f"{what}{jax.tree_util.keystr(path)} is complex ({dtype}); pystiffsens differentiates real parameters: "
            "pass the real and imaginary parts as two real entries."
        )
    return kind in "iuf" and hasattr(leaf, "shape")


def _as_float64(leaf, path, what: str, host: bool = False):
    global _warned_low_precision
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and dtype != np.float64 and str(dtype) in _LOW_PRECISION and not _warned_low_precision:
        _warned_low_precision = True
        _warnings.warn(
            f"{what}{jax.tree_util.keystr(path)} is {dtype}: pystiffsens computes in float64 and promotes it "
            "(and any other lower-precision input; this warning is shown once).",
            UserWarning)
    if isinstance(leaf, jax.core.Tracer):
        return jnp.asarray(leaf, dtype=jnp.float64)
    array = np.asarray(leaf, dtype=np.float64)  # no copy for a float64 array on the CPU
    if not (math.isfinite(array) if array.ndim == 0 else np.isfinite(array).all()):
        raise ValueError(f"{what}{jax.tree_util.keystr(path)}={leaf!r} contains non-finite values.")
    if isinstance(leaf, jax.Array) and leaf.dtype == np.float64:
        return leaf  # what jnp.asarray would return, without its ~13 us
    return array if host else jnp.asarray(array)


def promote(value, what: str, *, host: bool = False):
    """A float64 array of ``value`` (a state or times), with the one-time warning for lower precision
    (``host``: as in :func:`split`)."""
    if np.iscomplexobj(value):
        raise ValueError(f"{what} is complex; pystiffsens integrates real states.")
    return _as_float64(value, (), what, host)


def ordered_like(template, tree):
    """``tree`` with its dicts in the key order of ``template``'s (JAX keeps dict keys sorted)."""
    if isinstance(template, dict) and isinstance(tree, dict):
        return {key: ordered_like(template[key], tree[key]) for key in template}
    return tree


def difference(given, expected, shown: int = 5) -> str:
    """How the pytree ``given`` differs from ``expected``: entries missing, extra, or of another shape.

    Entries are named as :func:`path_name` names them, at most ``shown`` of each kind.
    """

    def entries(tree) -> dict[str, tuple]:
        flat, _ = jax.tree_util.tree_flatten_with_path(tree)
        return {path_name(path): np.shape(leaf) for path, leaf in flat}

    have, want = entries(given), entries(expected)

    def listed(names) -> str:
        names = list(names)
        return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")

    parts = []
    missing = [name for name in want if name not in have]
    extra = [name for name in have if name not in want]
    reshaped = [f"{name} {have[name]} instead of {want[name]}" for name in want if name in have and have[name] != want[name]]
    if missing:
        parts.append(f"lacks {listed(missing)}")
    if extra:
        parts.append(f"has {listed(extra)}, which the problem has not")
    if reshaped:
        parts.append(f"has {listed(reshaped)}")
    return "; ".join(parts) or "has the same entries in another pytree structure"


def path_name(path) -> str:
    """``a.b[0].c`` for a pytree path (``params`` for the root itself)."""
    out = ""
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            out += ("." if out else "") + str(key.key)
        elif isinstance(key, jax.tree_util.GetAttrKey):
            out += ("." if out else "") + key.name
        else:  # SequenceKey, FlattenedIndexKey
            out += f"[{getattr(key, 'idx', key)}]"
    return out or "params"
