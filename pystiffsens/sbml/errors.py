"""The exception raised for SBML constructs outside the supported subset."""

from __future__ import annotations


class NotSupported(ValueError):
    """An SBML construct that :mod:`pystiffsens.sbml` does not translate.

    The message names the construct, the element (its id, or its position where it has none)
    and the file, so that a model can be fixed or the construct reported.
    """


def not_supported(construct: str, element: str, source: str, hint: str = "") -> NotSupported:
    """``NotSupported`` with the message "<file>: <construct> (<element>) is not supported[; hint]"."""
    return NotSupported(
        f"{source}: {construct} ({element}) is not supported by pystiffsens.sbml" + (f"; {hint}" if hint else ".")
    )
