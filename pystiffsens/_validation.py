"""Input validation shared by every public entry point.

Each check raises ``ValueError`` naming the bad value, the valid choices and, where there
is one, the fix.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

import jax


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


def called(what: str, fn, *args, params):
    """``fn(*args)`` on concrete values; a ``ValueError`` naming ``what`` when it fails (as :func:`traced`)."""
    return traced(what, fn, *args, params=params, evaluate=lambda f, *a: f(*a))


def traced(what: str, fn, *args, params, evaluate=jax.eval_shape):
    """``jax.eval_shape(fn, *args)``; a ``ValueError`` naming ``what`` when tracing fails.

    A ``KeyError`` (``fn`` reads a parameter that a dict ``params`` lacks) names the key and
    the valid parameter names; any other error is re-raised as ``ValueError`` with its message.
    """
    try:
        return evaluate(fn, *args)
    except KeyError as error:
        if not isinstance(params, dict):
            raise ValueError(f"{what} cannot be evaluated with JAX: KeyError: {error}") from error
        key = error.args[0] if error.args else error
        raise ValueError(
            f"{what} reads the parameter {key!r}, which params does not have; valid names: {sorted(params)}. "
            "Add it to params= or fix the name."
        ) from None
    except Exception as error:  # shape errors, unsupported operations, ...: all are bad input
        raise ValueError(f"{what} cannot be evaluated with JAX: {type(error).__name__}: {error}") from error
