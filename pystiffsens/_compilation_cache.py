"""JAX's persistent compilation cache, switched on in a user cache directory.

Every (solver, sensitivity) pair of a sweep compiles one XLA program (2-6 s each on a CPU
core), and the demo compiles about forty. JAX can store compiled programs on disk, keyed by
a hash of the program (its StableHLO without source locations), the compile options and the
jaxlib and device versions, so a second process that builds the same program loads it
instead of compiling it. ``import pystiffsens`` turns this on, in

``jax/`` under :func:`cache_root`: ``$PYSTIFFSENS_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/pystiffsens``, else ``~/.cache/pystiffsens``,

unless ``PYSTIFFSENS_NO_COMPILATION_CACHE=1`` is set, or a cache directory is already
configured for JAX (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``), which is then left as it is.
Programs that compile in under :data:`MIN_COMPILE_TIME_S` are not stored.

The traced programs of :mod:`pystiffsens._program_cache` go to ``programs/`` beside it,
and the same variable turns them off. The directory may be deleted at any time; it only
costs recompilation. Processes on one machine (test workers, Dask workers) share it: JAX
writes entries without a lock, and an entry read while half written is reported by JAX as
a warning and compiled again.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from ._env import switched_on

DISABLE_VARIABLE = "PYSTIFFSENS_NO_COMPILATION_CACHE"
DIR_VARIABLE = "PYSTIFFSENS_CACHE_DIR"
MIN_COMPILE_TIME_S = 0.5
"""Compilations faster than this are not written to the cache (JAX's default is 1 s)."""


def cache_root() -> Path:
    """The directory of pystiffsens's caches: ``$PYSTIFFSENS_CACHE_DIR``, else the user cache directory."""
    if os.environ.get(DIR_VARIABLE):
        return Path(os.environ[DIR_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pystiffsens"


def cache_dir() -> Path:
    """The directory pystiffsens points JAX's compilation cache at (whether or not it is enabled)."""
    return cache_root() / "jax"


def programs_dir() -> Path:
    """The directory of traced programs (:mod:`pystiffsens._program_cache`)."""
    return cache_root() / "programs"


def enabled() -> bool:
    """Whether the caches are on, i.e. :data:`DISABLE_VARIABLE` is not set to a true value."""
    return not switched_on(DISABLE_VARIABLE)


def enable() -> Path | None:
    """Switch on the persistent compilation cache; return its directory, or ``None`` if left off.

    Left off when :data:`DISABLE_VARIABLE` is set to a true value; a directory already
    configured for JAX is kept (and returned).
    """
    if not enabled():
        return None
    configured = jax.config.jax_compilation_cache_dir  # type: ignore[attr-defined]
    if configured:
        return Path(configured)
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache rather than fail the import
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory
