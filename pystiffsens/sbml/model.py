"""The translated model: right-hand side, initial state, formulas and events as JAX functions."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np
import sympy

from ..problem import Problem, SparseRHS
from ..sparsity import Sparsity
from .events import TimeEvent
from .jaxify import LAYOUTS, Program
from .mathml import TIME, parse_infix, to_sympy
from .translate import AMOUNT_PREFIX, Translation

SCALAR_UP_TO = 200
"""``layout="auto"`` evaluates models of at most this many formulas (reactions and rules) in the
scalar layout, larger ones vectorised (benchmarks/README.md section 8)."""


class Model:
    """An SBML model translated to JAX (build it with :func:`pystiffsens.sbml.load`).

    Attributes
    ----------
    source : the file path, or ``'<string>'``; named in every error about the model.
    state_ids : ids of the state variables, in the order of ``y``: species that reactions, rate
        rules or events change (document order), then parameters and compartments with rate
        rules and parameters that events assign.
    state_kinds : per state, what ``y`` holds: ``"concentration"``, ``"amount"`` (species with
        ``hasOnlySubstanceUnits``, and species in a compartment whose size a rule sets) or ``"value"``.
    species_ids : every species id.
    parameter_ids : the inputs ``p``: every parameter and compartment whose value no rule sets.
        Parameters that events assign are inputs (their value at the start) and states.
    defaults : the file's value of each parameter id (``value``/``size``); NaN where unset and
        where an initial assignment sets it (absent or NaN in ``p`` means "use the initial assignment").
    assigned_parameter_ids : the parameter ids with an initial assignment (NaN in :attr:`defaults`).
    events : the time-triggered events, :class:`~pystiffsens.sbml.TimeEvent`.
    switches : the times :meth:`switch_times` gives, as formulas (``str``): one per distinct time at
        which a condition (of a piecewise function, in a rule or kinetic law) that compares time
        with a function of parameters changes, such as ``Fsk_time`` for ``piecewise(0, time - Fsk_time < 0, 1)``.
    layout : ``"scalar"`` or ``"vectorised"``, the layout of its programs (:func:`pystiffsens.sbml.load`).
    """

    def __init__(self, translation: Translation, layout: str = "auto"):
        if layout not in ("auto", *LAYOUTS):
            raise ValueError(f"layout={layout!r} is not a program layout; valid: {['auto', *LAYOUTS]}.")
        if layout == "auto":
            layout = "scalar" if len(translation.definitions) <= SCALAR_UP_TO else "vectorised"
        self.layout = layout
        self._t = translation
        self.source = translation.source
        self.id = translation.model_id
        self.state_ids = translation.state_ids
        self.state_kinds = translation.state_kinds
        self.species_ids = translation.species_ids
        self.parameter_ids = translation.parameter_ids
        self.defaults = dict(translation.defaults)
        self.assigned_parameter_ids = tuple(k for k in self.parameter_ids if k in translation.with_initial_assignment)
        self._programs: dict = {}
        self.events = tuple(self._time_event(spec) for spec in translation.events)
        self.switches = tuple(str(at) for at in translation.switches)

    def __repr__(self) -> str:
        return (
            f"sbml.Model({self.id!r} from {self.source!r}: {len(self.state_ids)} states, "
            f"{len(self.parameter_ids)} parameters, {len(self.events)} events, {self.layout} layout)"
        )

    # -- evaluation environments
    def _read(self, program: Program, names) -> list[str]:
        """The inputs among ``names`` that ``program`` reads."""
        used, bases = program.used_bases, self._t.input_bases
        return [k for k in names if bases[k] in used]

    def _inputs(self, p: Mapping, program: Program, overrides: tuple[str, ...], names, t) -> dict:
        """The env of ``program`` at time ``t``: the inputs among ``names`` that it reads, then ``overrides`` (species
        ids of ``p``) and the time. Only what the program reads is converted, which keeps a trace of a model with
        many parameters short; an input with an initial assignment that ``p`` lacks is NaN."""
        names = self._read(program, names)
        assigned = self._t.with_initial_assignment
        missing = [k for k in names if k not in p and k not in assigned]
        if missing:
            raise ValueError(
                f"{self.source}: p lacks the parameters {missing}, which {program.what} reads; model.defaults "
                "has the file's values."
            )
        env = {self._t.input_bases[k]: jnp.asarray(p.get(k, jnp.nan), dtype=jnp.float64) for k in names}
        env.update({sid: jnp.asarray(p[sid], dtype=jnp.float64) for sid in overrides})
        env[TIME.name] = jnp.asarray(t, dtype=jnp.float64)
        return env

    def _overrides(self, p: Mapping) -> tuple[str, ...]:
        return tuple(sid for sid in self._t.overridable_species if sid in p)

    @functools.cached_property
    def _free_inputs(self) -> tuple[str, ...]:
        """The inputs that are not also states (parameters that events assign are states at time t)."""
        return tuple(k for k in self.parameter_ids if k not in self.state_ids)

    def _env(self, t, y, p: Mapping, outputs: tuple, what: str, extra: tuple[str, ...] = ()) -> tuple[Program, dict, tuple]:
        """``(program, env, block)`` of ``outputs`` at ``(t, y)``: the program for ``p``'s overrides and the names
        ``extra``, its inputs by name (:meth:`_inputs`), the state as a block."""
        y = jnp.asarray(y, dtype=jnp.float64)
        if y.shape != (len(self.state_ids),):
            raise ValueError(
                f"{self.source}: y has shape {y.shape}; the model has {len(self.state_ids)} states "
                f"{list(self.state_ids)}."
            )
        overrides = self._overrides(p)
        program = self._program(outputs, overrides + extra, what)
        return program, self._inputs(p, program, overrides, self._free_inputs, t), (self._t.state_bases, y)

    def _program(self, outputs: tuple, overrides: tuple, what: str, initial: bool = False) -> Program:
        """The program of ``outputs`` at time t (or at the start, ``initial``), built once per model and key."""
        key = (outputs, overrides, initial)
        if key not in self._programs:
            t = self._t
            definitions = t.initial_definitions if initial else t.definitions
            bases = t.initial_bases(overrides) if initial else t.rhs_bases(overrides)
            self._programs[key] = Program(definitions, bases, outputs, self.source, what, self.layout)
        return self._programs[key]

    # -- the contract
    def rhs(self, t, y, p: Mapping):
        """``dy/dt`` at ``(t, y)``: a float64 array like ``y``; jax-traceable (``jit``, ``vmap``, ``grad``).

        ``p`` maps the ids of :attr:`parameter_ids` to scalars: every one the right-hand side
        reads (through rules too; a ValueError names those missing), e.g. :attr:`defaults`. Extra
        keys are ignored, except ids of constant or boundary species without rules, whose value
        in their own units replaces the file's. A parameter with an initial assignment (SBML
        L3V2 Sect. 4.8) takes the assignment where ``p`` lacks it or holds NaN (see
        :meth:`initial_state`).
        """
        program, env, block = self._env(t, y, p, self._t.derivatives, "the right-hand side")
        return program(env, block)

    @functools.cached_property
    def jacobian_sparsity(self) -> Sparsity:
        """Which derivatives can depend on which states: the structural pattern of ``d rhs / d y``.

        Read from the formulas (a derivative depends on a state when its reactions' rates and
        the rules they use mention it, in any branch of a piecewise), so it holds at every
        time, parameter value and state (:mod:`pystiffsens.sparsity`).
        """
        program = self._program(self._t.derivatives, (), "the right-hand side")
        return Sparsity(program.dependence(self._t.state_bases))

    @functools.cached_property
    def sparse_rhs(self) -> SparseRHS:
        """:meth:`rhs` with its :attr:`jacobian_sparsity`, as problems of this model solve it (a :class:`pystiffsens.SparseRHS`)."""
        return SparseRHS(_ModelRHS(self), self.jacobian_sparsity)

    def rhs_of_vector(self, names: Sequence[str]):
        """``(t, y, theta) -> rhs(t, y, dict(zip(names, theta)))``, reading the inputs from ``theta`` at once; None in
        the scalar layout, which reads them one by one anyway.

        A compiled program keeps a problem's scalar parameters as one vector; unravelled into a dict
        at every right-hand side call, they cost the vectorised layout one reshape and one stack entry
        per parameter and call (Smith_BMCSystBiol2013: 134 000 of the 237 000 operations of its
        gradient's program). Here the inputs the right-hand side reads are one gather of ``theta``.
        """
        if self.layout != "vectorised":
            return None
        t = self._t
        names = tuple(names)
        overrides = tuple(sid for sid in t.overridable_species if sid in names)
        program = self._program(t.derivatives, overrides, "the right-hand side")
        position = {name: i for i, name in enumerate(names)}
        input_of = {t.input_bases[k]: k for k in self._free_inputs}
        take, others, order = [], [], []  # theta positions; the time or NaN; where each base comes from
        missing = []
        for base in program.scalar_names(t.state_bases):
            source = base if base in overrides else input_of.get(base)
            if source in position:
                order.append(("theta", len(take)))
                take.append(position[source])
            elif base == TIME.name or source in t.with_initial_assignment:
                order.append(("other", len(others)))
                others.append(base == TIME.name)  # True: the time; False: NaN (the initial assignment applies)
            else:
                missing.append(source)
        if missing:
            raise ValueError(f"{self.source}: the parameters {missing}, which the right-hand side reads, are not among "
                             f"the given parameters {list(names)}.")
        permutation = np.array([i if kind == "theta" else len(take) + i for kind, i in order], dtype=int)
        take_at = np.array(take, dtype=int)

        def rhs(time, y, theta):
            y = jnp.asarray(y, dtype=jnp.float64)
            parts = [jnp.asarray(theta, dtype=jnp.float64)[take_at]]
            if others:
                time = jnp.asarray(time, dtype=jnp.float64)
                parts.append(jnp.stack([time if is_time else jnp.full_like(time, jnp.nan) for is_time in others]))
            scalars = jnp.concatenate(parts)[permutation]
            return program({}, (t.state_bases, y), scalars)

        return rhs

    def initial_state(self, p: Mapping, species: Mapping | None = None, y=None, t0=0.0):
        """The state at ``t0`` (default 0, where SBML applies initial assignments), jax-traceable in ``p``.

        Parameters
        ----------
        p : every id of :attr:`parameter_ids` to a scalar. **Rule for inputs with an initial
            assignment:** where ``p`` lacks one or holds NaN (as :attr:`defaults` does), it takes
            the initial assignment, evaluated from the other inputs; any other value overrides the
            assignment (as a PEtab condition table does). The same rule holds in :meth:`rhs`,
            :meth:`compile` and the events, so the value is the same at every time.
        species : overrides of state values, by state id (species, or parameters and compartments
            with rate rules), each in the quantity's own SBML units: the initial concentration of
            a species unless it has ``hasOnlySubstanceUnits``, then its amount. A NaN value means
            "no override". Values may be traced. Overrides replace only the named states; initial
            assignments of other quantities that reference them keep the file's values.
        y : a state to start from instead of the file's initial values and initial assignments
            (e.g. the end of a preequilibration); overrides are applied to it.

        Returns a float64 array in the order of :attr:`state_ids` (units: :attr:`state_kinds`).
        """
        t = self._t
        if y is None:
            overrides = self._overrides(p)
            program = self._program(t.initial_outputs, overrides, "the initial state", initial=True)
            start = program(self._inputs(p, program, overrides, self.parameter_ids, t0))
        else:
            start = jnp.asarray(y, dtype=jnp.float64)
            if start.shape != (len(self.state_ids),):
                raise ValueError(
                    f"{self.source}: y has shape {start.shape}; the model has {len(self.state_ids)} states."
                )
        if not species:
            return start
        unknown = [sid for sid in species if sid not in self.state_ids]
        if unknown:
            raise ValueError(
                f"{self.source}: cannot override the initial values of {unknown}: not state variables "
                f"(states: {list(self.state_ids)}). Constant and boundary species without rules are "
                "set through p; species set by assignment rules cannot be set."
            )
        sizes = self._state_sizes(t0, start, p)
        for sid, value in species.items():
            i = self.state_ids.index(sid)
            value = jnp.asarray(value, dtype=jnp.float64)
            converted = value * sizes[sid] if sid in sizes else value
            start = start.at[i].set(jnp.where(jnp.isnan(value), start[i], converted))
        return start

    def _state_sizes(self, t, y, p) -> dict:
        """The compartment size of each state kept as amount but named in concentration units, at ``(t, y)``."""
        amounts = [sid for sid, base in zip(self.state_ids, self._t.state_bases) if base.startswith(AMOUNT_PREFIX)]
        if not amounts:
            return {}
        outputs = tuple(sympy.Symbol(self._t.compartment_of[sid]) for sid in amounts)
        program, env, block = self._env(t, y, p, outputs, "compartment sizes")
        return dict(zip(amounts, program(env, block)))

    def compile(self, formula, extra=()) -> Formula:
        """A JAX function ``f(t, y, p, extra_values={}) -> scalar`` of ``formula`` at state ``y`` (a :class:`Formula`).

        ``formula`` is a string in SBML L3 infix syntax, with ``log(x)`` the natural logarithm as
        in PEtab (:func:`pystiffsens.sbml.mathml.parse_infix`), or a sympy expression (e.g. from
        ``petab.v1.math.sympify_petab``; symbols are matched by name). Every model id can be used
        with its SBML meaning: species as concentration (amount with ``hasOnlySubstanceUnits``),
        parameters, compartments, assignment-rule targets, reaction ids (their rates); ``time``
        and ``t`` (where no model id is ``t``) are the time. ``extra`` names further symbols
        (PEtab's ``observableParameter1_obs``), valued at call time by ``extra_values``.
        ``p`` is as in :meth:`rhs`. For expressions of no model quantity, see :func:`pystiffsens.sbml.to_jax`.
        """
        extra = tuple(extra)
        clash = sorted(set(extra) & self._t.ids)
        if clash:
            raise ValueError(
                f"{self.source}: extra names {clash} are model ids; placeholders must differ from model ids."
            )
        unknown: list[str] = []

        def resolve(name: str):
            if name in self._t.ids or name in extra:
                return sympy.Symbol(name)
            if name in ("t", "time"):
                return TIME
            unknown.append(name)
            return sympy.Symbol(name)

        if isinstance(formula, str):
            expr = to_sympy(parse_infix(formula, self.source), resolve, f"the formula {formula!r}", self.source)
        elif isinstance(formula, sympy.Basic):
            expr = formula.xreplace({s: resolve(s.name) for s in formula.free_symbols})
        else:
            raise ValueError(f"{self.source}: formula={formula!r} must be a string or a sympy expression.")
        if unknown:
            raise ValueError(
                f"{self.source}: the formula {str(formula)!r} uses {sorted(set(unknown))}, which are neither "
                f"model ids nor extra names {list(extra)}; model ids: {sorted(self._t.ids)}."
            )

        return Formula(self, expr, extra, str(formula))

    def problem(self, tspan=None, saveat=None, params=None, loss=None, stiffness=None, name=None):
        """A :class:`pystiffsens.Problem` of this model (``rhs=model.sparse_rhs``).

        ``params`` is :attr:`defaults` updated by ``params``, less the parameters that take their
        initial assignments (NaN); ``y0`` is :meth:`initial_state` at those parameters and
        ``tspan[0]``. To differentiate through initial values that depend on parameters, pass
        ``y0=model.initial_state(params)`` to ``pss.solve`` with traced params. ``tspan``
        defaults to ``(0, max(saveat))``. A model with events is refused: a Problem has no events.
        In a model with :attr:`switches`, add the stops of :func:`pystiffsens.sbml.switches.stops`
        around :meth:`switch_times` to ``saveat`` (as :mod:`pystiffsens.petab` does) to solve at
        tight tolerances. Derivatives by a parameter that moves a switch time miss the switch's own
        term here: for those, use the right-hand side :func:`pystiffsens.sbml.switches.warped` and
        the stops it needs (``stops(..., warps=...)``), as :meth:`pystiffsens.petab.PetabProblem.problem` does.
        """
        if self.events:
            raise ValueError(
                f"{self.source}: the model has events {[e.id for e in self.events]}, which a pss.Problem "
                "cannot represent; simulate between the event times with model.rhs and model.events."
            )
        values = dict(self.defaults)
        for key, value in (params or {}).items():
            if key not in values and key not in self._t.overridable_species:
                raise ValueError(
                    f"{self.source}: params names {key!r}, which is not a parameter id; valid: "
                    f"{list(self.parameter_ids)} (and constant species {list(self._t.overridable_species)})."
                )
            values[key] = value
        unset = [k for k in self.parameter_ids if k not in self._t.with_initial_assignment and _is_nan(values[k])]
        if unset:
            raise ValueError(f"{self.source}: the parameters {unset} have no value in the file; give them in params=.")
        if tspan is None:
            if saveat is None:
                raise ValueError(f"{self.source}: give tspan=(t0, t1) or saveat= to build a problem.")
            tspan = (0.0, float(max(saveat)))
        values = {k: float(v) for k, v in values.items() if not (k in self._t.with_initial_assignment and _is_nan(v))}
        y0 = self.initial_state(values, t0=tspan[0])
        return Problem(self.sparse_rhs, y0, tspan, values, loss=loss, saveat=saveat, stiffness=stiffness, name=name or self.id)

    def switch_times(self, p: Mapping):
        """The times at which the right-hand side jumps because a condition on time changes, from the inputs ``p``.

        A ``(switches,)`` float64 array (jax-traceable): for each condition that compares time
        with a function of parameters and compartments (``time - Fsk_time < 0`` gives
        ``Fsk_time``), the time it changes at. The right-hand side is discontinuous there, and
        an adaptive solver that steps across, or onto, such a time shrinks its steps until they
        fall below the smallest allowed (``DtLessThanMin``); :mod:`pystiffsens.sbml.switches`
        turns these times into stops a solve steps onto and over.
        """
        if not self._t.switches:
            return jnp.zeros((0,))
        overrides = self._overrides(p)
        program = self._program(self._t.switches, overrides, "the switch times", initial=True)
        return jnp.stack(program(self._inputs(p, program, overrides, self.parameter_ids, math.nan)))

    def _time_event(self, spec) -> TimeEvent:
        t = self._t
        inputs = list(self.parameter_ids)

        def time(p):
            overrides = self._overrides(p)
            program = self._program((spec.time,), overrides, f"the trigger of event {spec.id!r}", initial=True)
            return program(self._inputs(p, program, overrides, inputs, math.nan))[0]

        targets = [target for target, _ in spec.assignments]
        indices = [t.state_ids.index(target) for target in targets]

        def assign(time_, y, p):
            program, env, block = self._env(time_, y, p, tuple(e for _, e in spec.assignments),
                                            f"the assignments of event {spec.id!r}")
            values = program(env, block)
            sizes = self._state_sizes(time_, y, p)
            y_new = jnp.asarray(y, dtype=jnp.float64)
            for target, i, value in zip(targets, indices, values):
                y_new = y_new.at[i].set(value * sizes[target] if target in sizes else value)
            return y_new

        return TimeEvent(spec.id, time, assign, spec.initial_value)


@dataclasses.dataclass(frozen=True, eq=False)
class Formula:
    """A formula of a model, compiled by :meth:`Model.compile`: ``formula(t, y, p, extra_values={}) -> scalar``."""

    model: Model
    expr: sympy.Basic
    extra: tuple[str, ...]
    text: str

    def __call__(self, t, y, p: Mapping, extra_values: Mapping | None = None):
        extra_values = {} if extra_values is None else extra_values
        missing = [name for name in self.extra if name not in extra_values]
        if missing:
            raise ValueError(f"{self.model.source}: the formula {self.text!r} needs extra_values for {missing}.")
        program, env, block = self.model._env(t, y, p, (self.expr,), f"the formula {self.text!r}", self.extra)
        env.update({name: jnp.asarray(extra_values[name], dtype=jnp.float64) for name in self.extra})
        return program(env, block)[0]

    def inputs(self, p: Mapping) -> tuple[str, ...]:
        """The keys of ``p`` that a call with ``p`` reads: the inputs the formula uses (through assignment rules and
        reaction rates too) and the species ``p`` overrides. A caller that gathers ``p`` per measurement
        (:mod:`pystiffsens.petab.formulas`) gathers only these."""
        model = self.model
        overrides = model._overrides(p)
        program = model._program((self.expr,), overrides + self.extra, f"the formula {self.text!r}")
        return tuple(k for k in model._read(program, model._free_inputs) if k in p) + overrides


class _ModelRHS:
    """A model's :meth:`Model.rhs` as a problem's right-hand side, which a compiled program may also call with the
    parameters as one vector (:meth:`of_vector`)."""

    __name__ = "rhs"

    def __init__(self, model: Model):
        self.model = model

    def __call__(self, t, y, p):
        return self.model.rhs(t, y, p)

    def of_vector(self, names):
        """:meth:`Model.rhs_of_vector`."""
        return self.model.rhs_of_vector(names)


def _is_nan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False
