"""pystiffsens: measure how parameter gradients of stiff ODEs vanish as stiffness grows.

``import pystiffsens as pss`` changes three pieces of JAX's global state, each with an opt-out:

* it switches JAX to float64 (``jax_enable_x64``); with ``PYSTIFFSENS_NO_GLOBAL_X64=1`` it
  leaves your JAX precision alone and uses float64 only inside its own calls (:mod:`pystiffsens._x64`);
* it turns on JAX's persistent compilation cache (:mod:`pystiffsens._compilation_cache`) and a
  cache of traced programs of built-in problems (:mod:`pystiffsens._program_cache`), in
  ``~/.cache/pystiffsens`` (``$PYSTIFFSENS_CACHE_DIR``); ``PYSTIFFSENS_NO_COMPILATION_CACHE=1``
  turns both off, and a cache directory you configured for JAX yourself is kept;
* it turns off JAX's asynchronous dispatch on CPU (``jax_cpu_enable_async_dispatch``), which
  cost 70–90 µs a call (:mod:`pystiffsens._cpu_dispatch`); ``PYSTIFFSENS_CPU_ASYNC_DISPATCH=1``
  keeps it, and it stays on where JAX ran a computation before the import.

The core (problems, solvers, sensitivities, ``solve``, ``gradient``) is imported at once;
the layers that need pandas, statsmodels, matplotlib or optax (``study``, ``stiffness``,
``theory``, ``resnet``, ``node`` and the study functions ``sweep``, ``fit_decay``, ``compare``,
``report``) and the real-model readers (``sbml``, ``petab``; ``pip install
'pystiffsens[petab]'``) are imported on first use (PEP 562), so ``import pystiffsens`` stays light.
"""

import importlib as _importlib

from . import _compilation_cache, _cpu_dispatch, _x64

_x64.enable()
_compilation_cache.enable()
_cpu_dispatch.make_synchronous()

from . import backends, memory, problems, sensitivity, solvers  # noqa: E402
from ._xla import jit  # noqa: E402
from .api import gradient, make_gradient_fn, solve  # noqa: E402
from .options import Options  # noqa: E402
from .problem import Problem, SparseRHS, SplitRHS  # noqa: E402
from .results import GradientResult, Solution  # noqa: E402
from .returncode import ReturnCode  # noqa: E402

_LAZY_MODULES = ("node", "petab", "resnet", "sbml", "stiffness", "study", "theory")
_LAZY_STUDY_NAMES = ("compare", "fit_decay", "report", "sweep")

__all__ = [
    "GradientResult",
    "Options",
    "Problem",
    "ReturnCode",
    "Solution",
    "SparseRHS",
    "SplitRHS",
    "compare",
    "fit_decay",
    "gradient",
    "jit",
    "backends",
    "make_gradient_fn",
    "memory",
    "node",
    "petab",
    "problems",
    "report",
    "resnet",
    "sbml",
    "sensitivity",
    "solve",
    "solvers",
    "stiffness",
    "sweep",
    "theory",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the heavier layers on first use (PEP 562)."""
    if name in _LAZY_MODULES:
        return _importlib.import_module(f".{name}", __name__)
    if name in _LAZY_STUDY_NAMES:
        value = getattr(_importlib.import_module(".study", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_STUDY_NAMES))
