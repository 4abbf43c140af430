"""The process's memory mappings against the kernel's limit, and room made for a new compiled program.

XLA:CPU loads each fused kernel of a compiled program as an object of its own, with mappings
of its own: one PEtab gradient program of Zheng_PNAS2012 (15 states) adds about 3600 to the
process (Rodas5P with the discrete adjoint; KenCarp4 with InterpolatingAdjoint about 3800).
Linux gives a process at most ``vm.max_map_count`` mappings (65530 by default), and past it
LLVM aborts the whole process ("LLVM ERROR: Unable to allocate section memory!"): a script
compiling such programs in one process died that way at its twenty-second (benchmarks/README.md,
section 5).
Dropping a program's last reference gives its mappings back.

So the caches of compiled programs (:class:`pystiffsens.backends.compiled.Programs`,
:class:`pystiffsens.petab.problem.PetabProblem`) call :func:`make_room` before they compile
one more: while the process is within :data:`RESERVE` mappings of the limit, it drops their
least recently used programs. A dropped program compiles again when next used (from the
persistent compilation cache where that is on). Where ``/proc`` does not say (not Linux),
nothing is dropped.
"""

from __future__ import annotations

import collections
import functools
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Mappings kept free for the next program: a few times the largest program measured (about 3800).
RESERVE = 16384

_MAPS = Path("/proc/self/maps")
_LIMIT = Path("/proc/sys/vm/max_map_count")


def count() -> int | None:
    """The process's memory mappings now (None where ``/proc`` does not say)."""
    try:
        with _MAPS.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return None


@functools.cache
def limit() -> int | None:
    """The kernel's limit on a process's mappings, ``vm.max_map_count`` (None where ``/proc`` does not say)."""
    try:
        return int(_LIMIT.read_text())
    except (OSError, ValueError):
        return None


def crowded() -> bool:
    """Whether the process is within :data:`RESERVE` mappings of :func:`limit`."""
    most, now = limit(), count()
    return most is not None and now is not None and now + RESERVE > most


def make_room(cache: collections.OrderedDict, forget: Callable[[Any], None] | None = None) -> int:
    """Drop ``cache``'s oldest entries (least recently used first) while :func:`crowded`; return how many.

    ``forget(value)`` is called with each dropped value, to drop the other references its owner
    keeps to it. Where the drop alone leaves the process crowded, garbage is collected before the
    next count: a program held in reference cycles (a jitted closure) is given back only then,
    and a collection in a large process takes seconds (2.3 s per drop in a test worker).
    """
    dropped = 0
    while cache and crowded():
        _, value = cache.popitem(last=False)
        if forget is not None:
            forget(value)
        del value
        dropped += 1
        if crowded():
            gc.collect()
    return dropped
