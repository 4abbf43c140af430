"""pystiffsens: measure how parameter gradients of stiff ODEs vanish as stiffness grows."""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import problems  # noqa: E402
from .problem import Problem  # noqa: E402
from .returncode import ReturnCode  # noqa: E402

__all__ = ["Problem", "ReturnCode", "problems"]
__version__ = "0.1.0"
