"""SBML models as JAX functions: ``sbml.load(path_or_text) -> sbml.Model`` (issue 27).

A model read with python-libsbml is translated to sympy (:mod:`.mathml`) and from sympy to
JAX with sympy's JAX printer (:mod:`.jaxify`). The supported subset (SBML Level 2 and 3 core,
:mod:`.translate` gives the semantics): species in amounts or concentrations, boundary and
constant species, compartments of any size (set by parameters, initial assignments, assignment
or rate rules), reactions with local parameters and stoichiometries given by ids, rate rules,
assignment rules, initial assignments, function definitions, piecewise (conditions that
compare time with parameters are switches in time, :meth:`Model.switch_times`, which a solve
steps over with the stops of :mod:`.switches`), and time-triggered events. Anything else is
refused with :class:`NotSupported` (a ``ValueError``) naming the construct, the element and
the file.

``to_jax(expr, symbols)`` turns a sympy expression of named symbols into a JAX function (for
formulas that name no model quantity, such as PEtab noise formulas with placeholders);
:meth:`Model.compile` does the same for formulas over the model's quantities.
"""

from __future__ import annotations

from .errors import NotSupported
from .events import TimeEvent
from .jaxify import to_jax
from .model import Model
from .reader import read
from .translate import translate

__all__ = ["Model", "NotSupported", "TimeEvent", "load", "to_jax"]


def load(path_or_text, *, layout: str = "auto") -> Model:
    """The :class:`Model` of an SBML file (a ``str`` or ``os.PathLike`` path) or SBML text (a ``str`` starting "<").

    ``layout``: how the model's formulas become JAX programs, ``"scalar"`` (fastest to run) or
    ``"vectorised"`` (fastest to compile), see :mod:`.jaxify`; ``"auto"`` takes ``"scalar"`` up
    to :data:`~pystiffsens.sbml.model.SCALAR_UP_TO` formulas (reactions and rules) and
    ``"vectorised"`` above. Raises :class:`NotSupported` for constructs outside the supported
    subset and ``ValueError`` for unreadable or inconsistent models; both name the file.
    """
    doc, source = read(path_or_text)
    return Model(translate(doc, source), layout=layout)
