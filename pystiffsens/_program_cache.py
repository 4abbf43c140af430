"""Traced programs of built-in problems, stored on disk so that a rerun skips JAX tracing.

JAX's persistent compilation cache (:mod:`pystiffsens._compilation_cache`) skips XLA
compilation, but every process still *traces* each program first: for a sweep batch that
is 1-5 s of Python holding the GIL, most of a warm demo rerun. This cache stores the traced
program itself, as :mod:`jax.export` serialises it (StableHLO; the demo's 30 batches take
2.0 MB), in :func:`pystiffsens._compilation_cache.programs_dir`. A process that needs the same
program loads it, lowers the small call around it and compiles it, which the compilation
cache then answers.

The key must cover everything the program depends on, so only programs built wholly from
this package's code are stored: problems whose functions (``rhs``, loss, closed-form
solution, stiffness knob) are defined in ``pystiffsens`` modules, with closures, defaults
and data made of numbers, strings and arrays, hashed by value. The functions' code is
covered by a digest of the installed package's source files, so editing the package (an
editable install) changes every key; a module-level setting of the package changed while
a program runs (as a test may do) is not seen. A user's own ``rhs`` can read globals or
objects no key can see, so such programs are traced every time, as without this cache.
``PYSTIFFSENS_NO_COMPILATION_CACHE=1`` turns this cache off together with the compilation
cache. The directory may be deleted at any time; it only costs tracing again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from . import _compilation_cache, _xla

SUFFIX = ".jaxexport"
EXPORT_PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
_MAX_DEPTH = 12  # nesting of closures and containers hashed before a value counts as unkeyable


def compile_cached(jitted, args: Sequence, identity, device) -> jax.stages.Compiled:
    """``jitted.lower(*args).compile()``, with the traced program taken from or stored in the cache.

    ``args`` are pytrees of arrays or scalars and ``device`` the ``jax.Device`` the program
    runs on. ``identity`` must determine the function ``jitted`` traces, together with the
    package's code: a problem, solver and sensitivity objects, settings. When it has no
    reliable key (:func:`program_key` is ``None``) or the cache is off, this is plain
    ``jitted.lower(*args).compile()``.
    """
    key = program_key(identity, args, device)
    if key is None:
        return jitted.lower(*args).compile()
    path = _compilation_cache.programs_dir() / f"{key}{SUFFIX}"
    exported = _load(path)
    if exported is None:
        exported = _export(jitted, args, device)
        if exported is None:
            return jitted.lower(*args).compile()
        _store(path, exported)
    return _xla.jit(exported.call).lower(*args).compile()


def program_key(identity, args: Sequence, device) -> str | None:
    """The cache file name of a program, or ``None`` when the cache is off or ``identity`` has no reliable key."""
    if not _compilation_cache.enabled():
        return None
    digest = hashlib.sha256(_environment().encode())
    if not _add(digest, identity, 0):
        return None
    leaves, tree = jax.tree_util.tree_flatten(args)
    digest.update(repr((str(tree), device.platform, device.device_kind)).encode())
    digest.update(repr([(np.shape(leaf), str(_dtype(leaf))) for leaf in leaves]).encode())
    return digest.hexdigest()[:32]


@functools.lru_cache(maxsize=1)
def _environment() -> str:
    """What every key shares: versions, the flags that change tracing, and the package's source."""
    import jaxlib

    source = hashlib.sha256()
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        source.update(str(path.relative_to(package)).encode())
        source.update(path.read_bytes())
    flags = (jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision)  # type: ignore[attr-defined]
    return repr((jax.__version__, jaxlib.__version__, flags, source.hexdigest()))


def _add(digest, value, depth: int) -> bool:
    """Hash ``value`` into ``digest`` by value; ``False`` when it has no reliable key."""
    if depth > _MAX_DEPTH:
        return False
    update = digest.update
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        update(repr((type(value).__name__, value)).encode())
        return True
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        array = np.asarray(value)
        update(repr(("array", str(array.dtype), array.shape)).encode())
        update(np.ascontiguousarray(array).tobytes())
        return True
    if isinstance(value, (tuple, list)):
        update(repr((type(value).__name__, len(value))).encode())
        return all(_add(digest, item, depth + 1) for item in value)
    if isinstance(value, dict):
        if not all(isinstance(name, str) for name in value):
            return False
        update(repr(("dict", sorted(value))).encode())
        return all(_add(digest, value[name], depth + 1) for name in sorted(value))
    if isinstance(value, jax.tree_util.PyTreeDef):
        # Containers only (dicts, lists, tuples, None): a custom node's class is not covered by its text.
        text = str(value)
        if "CustomNode" in text:
            return False
        update(repr(("treedef", text)).encode())
        return True
    if isinstance(value, functools.partial):
        update(b"partial")
        return all(_add(digest, part, depth + 1) for part in (value.func, value.args, value.keywords))
    if isinstance(value, types.FunctionType):
        return _add_function(digest, value, depth)
    if _ours(type(value)) and not isinstance(value, type):
        # An instance of a class of this package (a Problem, a sensitivity algorithm): its state.
        update(repr(("object", type(value).__module__, type(value).__qualname__)).encode())
        if dataclasses.is_dataclass(value):
            state = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        elif hasattr(value, "__dict__") and not any(getattr(cls, "__slots__", ()) for cls in type(value).__mro__):
            state = vars(value)
        else:
            return False
        return _add(digest, state, depth + 1)
    return False


def _add_function(digest, fn: types.FunctionType, depth: int) -> bool:
    """A function of this package: its name, defaults and closure (its code is in :func:`_environment`)."""
    if not _ours(fn):
        return False
    digest.update(repr(("function", fn.__module__, fn.__qualname__)).encode())
    cells = [cell.cell_contents for cell in fn.__closure__ or ()]
    return all(_add(digest, part, depth + 1) for part in (fn.__defaults__, fn.__kwdefaults__, cells))


def _ours(obj) -> bool:
    """Whether ``obj`` (a function or class) is defined in this package, whose source :func:`_environment` covers."""
    module = getattr(obj, "__module__", None) or ""
    return module == "pystiffsens" or module.startswith("pystiffsens.")


def _export(jitted, args: Sequence, device):
    """The exported program, or ``None`` when it cannot be serialised (e.g. a custom call with no stability guarantee)."""
    # jax.export names platforms as XLA lowers for them ("cuda", not the device's "gpu");
    # where that name is not known for sure the program is not stored.
    platform = getattr(device.client, "_raw_platform", None) or device.platform
    if platform not in EXPORT_PLATFORMS:
        return None
    specs = jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(np.shape(leaf), _dtype(leaf)), args)
    try:
        return jax.export.export(jitted, platforms=[platform])(*specs)
    except (ValueError, NotImplementedError):  # the plain lowering that follows raises any error of the function itself
        return None


def _dtype(leaf):
    return leaf.dtype if hasattr(leaf, "dtype") else np.result_type(leaf)


def _load(path: Path):
    """The stored program, or ``None`` when there is none or it cannot be read (the entry is then rewritten)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return jax.export.deserialize(bytearray(data))
    except Exception:  # noqa: BLE001 - a damaged or foreign entry fails in the deserialiser in no single way
        return None


def _store(path: Path, exported) -> None:
    """Write atomically (processes share the directory); a read-only cache is skipped silently."""
    partial = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".partial-", delete=False) as file:
            partial = file.name
            file.write(exported.serialize())
        os.replace(partial, path)
    except OSError:
        if partial is not None:
            Path(partial).unlink(missing_ok=True)
