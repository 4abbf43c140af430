"""Warnings attributed to the user's line, however deep inside pystiffsens they are raised."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent)


def warn(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """``warnings.warn`` at the first frame outside pystiffsens (the user's call), whatever the call depth.

    A fixed ``stacklevel`` breaks whenever a wrapper (``_x64.float64``, a public alias) or a
    helper adds a frame; Python 3.12's ``skip_file_prefixes`` does this, but 3.10 and 3.11 lack it.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and _internal(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)


def _in_package(frame) -> bool:
    return str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE)


def _internal(frame) -> bool:
    """A frame of pystiffsens, or generated code (a dataclass's ``__init__``: ``<string>``) that it called."""
    generated = frame.f_code.co_filename.startswith("<") and frame.f_back is not None and _in_package(frame.f_back)
    return _in_package(frame) or generated
