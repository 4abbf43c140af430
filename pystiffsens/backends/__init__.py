"""Backends: the implementations of one interface (:class:`~.base.Backend`) that solve and differentiate.

* ``"jax"`` (:class:`~.native.JaxBackend`, the default): the native solvers and sensitivities,
  compiled by XLA, on CPU or CUDA; ``pss.solve`` is then a differentiable JAX function.
* ``"julia"`` (:class:`~.julia.JuliaBackend`): OrdinaryDiffEq and SciMLSensitivity through
  juliacall (``pip install 'pystiffsens[julia]'`` and a Julia).

:func:`get` resolves a name (or passes a backend object through) once, at the entry points.
"""

from __future__ import annotations

from .._validation import choose
from .base import Backend, BatchResult, Choice
from .julia import JuliaBackend
from .native import JaxBackend

_BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (JaxBackend(), JuliaBackend())}


def names() -> list[str]:
    """Names of the backends."""
    return list(_BACKENDS)


def default() -> JaxBackend:
    """The default, native (JAX) backend, which alone also builds JAX functions (``pss.make_gradient_fn``)."""
    backend = _BACKENDS["jax"]
    assert isinstance(backend, JaxBackend)
    return backend


def get(backend) -> Backend:
    """The backend called ``backend`` (``"jax"`` or ``"julia"``); a :class:`Backend` passes through."""
    if isinstance(backend, Backend):
        return backend
    return _BACKENDS[choose("backend", backend, names())]


def sensitivity(backend: Backend, value, problem, solver, options, **kwargs) -> Choice:
    """``backend.sensitivity(...)``; a name only another backend has is refused saying which one has it."""
    try:
        return backend.sensitivity(value, problem, solver, options, **kwargs)
    except ValueError as error:
        if isinstance(value, str) and str(error).startswith("Unknown sensitivity"):
            for other in _BACKENDS.values():
                names, _ = other.sensitivity_names()
                if other is not backend and value.lower() in (name.lower() for name in names):
                    choices, _ = backend.sensitivity_names()
                    raise ValueError(
                        f"sensitivity={value!r} exists only on backend={other.name!r}; backend={backend.name!r} "
                        f"has {', '.join(choices)}."
                    ) from None
        raise


__all__ = ["Backend", "BatchResult", "Choice", "JaxBackend", "JuliaBackend", "default", "get", "names", "sensitivity"]
