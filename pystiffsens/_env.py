"""Reading pystiffsens's on/off environment variables."""

from __future__ import annotations

import os

_FALSE_WORDS = ("", "0", "false", "no", "off")


def switched_on(variable: str) -> bool:
    """Whether ``variable`` is set to anything but an empty string, ``0``, ``false``, ``no`` or ``off``."""
    return os.environ.get(variable, "").strip().lower() not in _FALSE_WORDS
