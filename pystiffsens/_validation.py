"""Input validation shared by every public entry point.

Each check raises ``ValueError`` naming the bad value, the valid choices and, where there
is one, the fix.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

import numpy as np


def choose(kind: str, value, valid: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    """Resolve ``value`` against the ``valid`` names (case-insensitive, with aliases)."""
    valid = list(valid)
    aliases = aliases or {}
    if isinstance(value, str):
        lookup = {name.lower(): name for name in valid}
        lookup.update({alias.lower(): target for alias, target in aliases.items()})
        found = lookup.get(value.lower())
        if found is not None:
            return found
    choices = ", ".join(valid + [f"{a} (= {t})" for a, t in aliases.items()])
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, valid + list(aliases), n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
    raise ValueError(f"Unknown {kind} {value!r}. Valid choices: {choices}.{hint}")


def check_tolerances(rtol, atol) -> None:
    for name, value in (("rtol", rtol), ("atol", atol)):
        check_real(name, value)
        arr = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}={value!r} must be finite.")
    if np.any(np.asarray(rtol, dtype=float) <= 0):
        raise ValueError(f"rtol={rtol!r} must be > 0 (typical values: 1e-3 to 1e-10).")
    if np.any(np.asarray(atol, dtype=float) < 0):
        raise ValueError(f"atol={atol!r} must be >= 0.")


def check_dt(dt, tspan) -> None:
    if dt is None:
        return
    if not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt={dt!r} must be a positive finite number (or None for adaptive steps).")
    if dt > tspan[1] - tspan[0]:
        raise ValueError(f"dt={dt!r} is longer than the time span {tuple(tspan)}.")


def check_real(name: str, value) -> None:
    """``ValueError`` unless ``value`` is a real number or an array of them (not a string or bool)."""
    kind = np.asarray(value).dtype.kind if not isinstance(value, (str, bytes)) else "U"
    if isinstance(value, (bool, np.bool_)) or kind not in "iuf":
        raise ValueError(
            f"{name}={value!r} must be a real number (got {type(value).__name__}), e.g. {name}=1e-6."
        )


def check_max_steps(max_steps) -> None:
    if isinstance(max_steps, (bool, np.bool_)) or not (isinstance(max_steps, (int, np.integer)) and max_steps >= 1):
        raise ValueError(f"max_steps={max_steps!r} must be a positive integer.")


def check_tspan(tspan) -> tuple[float, float]:
    try:
        t0, t1 = (float(t) for t in tspan)
    except (TypeError, ValueError):
        raise ValueError(f"tspan={tspan!r} must be a pair (t0, t1) of numbers.") from None
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"tspan={tspan!r} must be finite.")
    if not t1 > t0:
        raise ValueError(f"tspan={tspan!r} must satisfy t0 < t1 (empty or reversed spans are not supported).")
    return t0, t1


def check_finite_tree(kind: str, tree) -> None:
    items = tree.items() if isinstance(tree, dict) else [(None, tree)]
    for key, value in items:
        label = kind if key is None else f"{kind}[{key!r}]"
        try:
            check_real(label, value)
        except ValueError:
            raise ValueError(f"{label}={value!r} must be a real number or array of real numbers.") from None
        arr = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{label}={value!r} contains non-finite values.")


def traced(what: str, fn, *args, params: dict):
    """``jax.eval_shape(fn, *args)``; a ``ValueError`` naming ``what`` when tracing fails.

    A ``KeyError`` (``fn`` reads a parameter that ``params`` lacks) names the key and the
    valid parameter names; any other error is re-raised as ``ValueError`` with its message.
    """
    import jax

    try:
        return jax.eval_shape(fn, *args)
    except KeyError as error:
        key = error.args[0] if error.args else error
        raise ValueError(
            f"{what} reads the parameter {key!r}, which params does not have; valid names: {sorted(params)}. "
            "Add it to params= or fix the name."
        ) from None
    except Exception as error:  # shape errors, unsupported operations, ...: all are bad input
        raise ValueError(f"{what} cannot be evaluated with JAX: {type(error).__name__}: {error}") from error
