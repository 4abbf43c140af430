"""pystiffsens: measure how parameter gradients of stiff ODEs vanish as stiffness grows.

``import pystiffsens as pss`` switches JAX to float64.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import problems, resnet, sensitivity, solvers, stiffness, theory  # noqa: E402
from .gradient import gradient, make_gradient_fn  # noqa: E402
from .problem import Problem  # noqa: E402
from .results import GradientResult, Solution  # noqa: E402
from .returncode import ReturnCode  # noqa: E402
from .solve import solve  # noqa: E402
from .study import compare, fit_decay, report, sweep  # noqa: E402

__all__ = [
    "GradientResult",
    "Problem",
    "ReturnCode",
    "Solution",
    "compare",
    "fit_decay",
    "gradient",
    "make_gradient_fn",
    "problems",
    "report",
    "resnet",
    "sensitivity",
    "solve",
    "solvers",
    "stiffness",
    "sweep",
    "theory",
]
__version__ = "0.1.0"
