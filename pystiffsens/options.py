"""One options type for every solve, gradient and sweep: tolerances, step control, step budget, step records.

:class:`Options` is validated once, where the user's arguments enter (``pss.solve``,
``pss.gradient``, ``pss.make_gradient_fn``, ``pss.sweep``, the CLI), and then travels as an
object. It is also a JAX pytree: ``rtol``, ``atol`` and ``dt`` are its leaves, so a compiled
program takes them as arguments (new tolerances do not recompile), while the step mode, the
step budget and the step-record policy are static.

Step control follows SciML's ``solve`` keywords. A method with an error estimate runs with
adaptive steps; ``dt=`` alone makes it take fixed steps of ``dt`` (as ``pss.solve`` always
has), and ``adaptive=False`` says so explicitly (SciML's ``adaptive=false``). A fixed-step
reference method (``pss.solvers.fixed_step_names()``) always needs ``dt``. ``adaptive=True``
keeps adaptive methods adaptive whatever ``dt`` is: that is how a sweep gives ``dt`` to its
fixed-step methods only. :meth:`Options.for_method` applies these rules and returns the
options a solve runs with, in which ``dt is None`` exactly when steps are adaptive.
"""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import numpy as np

from . import _warnings

#: float64 machine epsilon.
EPS = float(np.finfo(np.float64).eps)
#: Below ``rtol = MIN_RTOL_EPS * EPS`` float64 cannot deliver the requested accuracy (CVODES
#: and OrdinaryDiffEq warn there too); a solve then runs until its step budget is spent.
MIN_RTOL_EPS = 100


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class Options:
    """Integration options shared by solves, gradients and sweeps.

    Parameters
    ----------
    rtol, atol : tolerances of the adaptive step control and of the Newton iterations
        (with fixed steps, of the Newton iterations only).
    dt : a fixed step size, or None for adaptive steps (see the module docstring).
    adaptive : None (default: adaptive unless ``dt`` is given), False (fixed steps of ``dt``
        for every method, SciML's ``adaptive=false``), True (adaptive methods stay adaptive;
        ``dt`` is for the fixed-step methods only).
    max_steps : step attempts allowed; a solve that needs more stops with ``MaxIters``.
    max_saved_steps : length of the per-step records of solves that record their steps
        (``save_steps``, and the sensitivities that record the forward solve). None
        (default): sized to the solve, starting at
        :func:`pystiffsens.memory.first_saved_steps` entries and growing
        :data:`pystiffsens.memory.GROWTH`-fold up to ``max_steps`` when a solve fills them;
        an integer fixes the length (a solve that needs more accepted steps stops with
        ``MaxIters``).
    """

    rtol: float = 1e-6
    atol: float = 1e-8
    dt: float | None = None
    adaptive: bool | None = None
    max_steps: int = 100_000
    max_saved_steps: int | None = None

    def __post_init__(self):
        for name in ("rtol", "atol"):
            _check_real(name, getattr(self, name))
        rtol, atol = np.min(self.rtol), np.min(self.atol)
        if rtol <= 0:
            raise ValueError(f"rtol={self.rtol!r} must be > 0 (typical values: 1e-3 to 1e-10).")
        if atol < 0:
            raise ValueError(f"atol={self.atol!r} must be >= 0.")
        if rtol < MIN_RTOL_EPS * EPS:
            _warnings.warn(
                f"rtol={self.rtol!r} is below {MIN_RTOL_EPS} float64 machine epsilons ({MIN_RTOL_EPS * EPS:.1e}): "
                "float64 cannot meet it, so the solve will likely run to max_steps. Use rtol >= 1e-13.",
                RuntimeWarning)
        if self.dt is not None and not (
            isinstance(self.dt, (int, float, np.integer, np.floating)) and not isinstance(self.dt, bool)
            and math.isfinite(self.dt) and self.dt > 0
        ):
            raise ValueError(f"dt={self.dt!r} must be a positive finite number (or None for adaptive steps).")
        if not (self.adaptive is None or type(self.adaptive) is bool):
            raise ValueError(f"adaptive={self.adaptive!r} must be None, True or False.")
        _check_count("max_steps", self.max_steps)
        if self.max_saved_steps is not None:
            _check_count("max_saved_steps", self.max_saved_steps, "None (sized to the solve) or ")

    @property
    def fixed_steps(self) -> bool:
        """Whether these (resolved, :meth:`for_method`) options take fixed steps of ``dt``."""
        return self.dt is not None

    def for_method(self, method, t_span: float | None = None) -> Options:
        """The options ``method`` runs with: ``adaptive`` decided and ``dt`` None exactly for adaptive steps.

        ``ValueError`` when the method needs ``dt`` and has none, or when ``dt`` exceeds
        ``t_span`` (the length of the time span).
        """
        fixed = (not method.adaptive) or self.adaptive is False or (self.adaptive is None and self.dt is not None)
        if fixed and self.dt is None:
            why = "is a fixed-step reference method" if not method.adaptive else "runs with adaptive=False"
            raise ValueError(f"solver={method.name!r} {why} and needs dt= (a fixed step size).")
        if fixed and t_span is not None and self.dt is not None and self.dt > t_span:
            raise ValueError(f"dt={self.dt!r} is longer than the time span ({t_span!r}).")
        if fixed == self.fixed_steps and self.adaptive == (not fixed):
            return self
        # Already validated: rebuild without checking again.
        return Options.tree_unflatten((not fixed, self.max_steps, self.max_saved_steps),
                                      (self.rtol, self.atol, self.dt if fixed else None))

    @property
    def static(self) -> tuple:
        """What a compiled program depends on besides the tolerances and ``dt`` (its leaves)."""
        return (self.dt is None, self.adaptive, self.max_steps, self.max_saved_steps)

    def tree_flatten(self):
        return (self.rtol, self.atol, self.dt), (self.adaptive, self.max_steps, self.max_saved_steps)

    @classmethod
    def tree_unflatten(cls, aux, children):
        # No validation: inside a transformation the leaves are tracers or placeholders.
        out = object.__new__(cls)
        for name, value in zip(("rtol", "atol", "dt", "adaptive", "max_steps", "max_saved_steps"), (*children, *aux)):
            object.__setattr__(out, name, value)
        return out


# Compiled programs take Options as an argument; jax.export (pystiffsens._program_cache) stores their tree.
jax.export.register_pytree_node_serialization(
    Options,
    serialized_name="pystiffsens.Options",
    serialize_auxdata=lambda aux: json.dumps(list(aux)).encode(),
    deserialize_auxdata=lambda data: tuple(json.loads(data)),
)


def _check_real(name: str, value) -> None:
    if type(value) is float and math.isfinite(value):
        return
    kind = np.asarray(value).dtype.kind if not isinstance(value, (str, bytes)) else "U"
    if isinstance(value, (bool, np.bool_)) or kind not in "iuf":
        raise ValueError(f"{name}={value!r} must be a real number (got {type(value).__name__}), e.g. {name}=1e-6.")
    if not np.all(np.isfinite(np.asarray(value, dtype=float))):
        raise ValueError(f"{name}={value!r} must be finite.")


def _check_count(name: str, value, prefix: str = "") -> None:
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, (int, np.integer)) and value >= 1):
        raise ValueError(f"{name}={value!r} must be {prefix}a positive integer.")
