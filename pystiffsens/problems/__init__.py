"""Built-in problems: ``pss.problems.get(name, **options)`` and ``pss.problems.names()``.

Every built-in documents its stiffness knob and default loss and, where one exists,
carries the closed-form solution (exact parameter sensitivities follow from it by AD).
"""

from __future__ import annotations

from . import chemistry, linear, neural, oscillators, scalar  # noqa: F401  (registers the built-ins)
from ._registry import describe, get, names, options, register

__all__ = ["get", "names", "options", "describe", "register"]
