"""The meaning of an SBML model as named quantities: states, inputs, derived quantities and derivatives.

Semantics (SBML L3V2 core; Level 2 reads the same way):

* A reaction's kinetic law is a rate in substance per time (Sect. 4.11). A species with
  ``hasOnlySubstanceUnits=false`` stands in formulas for its concentration, amount / size of
  its compartment (Sect. 4.6); with ``true`` for its amount. Its amount changes by
  ``sum(stoichiometry * rate)`` over the reactions it takes part in (Sect. 4.11), times its
  conversion factor (Sect. 4.6), unless it is a boundary species (Sect. 4.6).
* States: a species in a compartment of constant size keeps its formula value (concentration
  or amount) as state, ``d[S]/dt = sum(stoichiometry * rate) / V``; in a compartment whose
  size is set by a rule it keeps its amount, and stands for amount / size in formulas. A
  species with a rate rule keeps its formula value (the rule is in its units, Sect. 4.9).
  Parameters and compartments with rate rules, and parameters that events assign, are states too.
* Assignment rules hold at all times (Sect. 4.9); initial assignments at the start
  (Sect. 4.8) and override the values in the file; both may reference each other and are
  evaluated in dependency order (Sect. 4.9 forbids cycles).
* Inputs (parameter ids): every parameter and compartment whose value no rule sets. An input
  with an initial assignment takes the assignment where the caller's value is absent or NaN (see
  :meth:`pystiffsens.sbml.Model.initial_state`).
* Local parameters of a kinetic law shadow global ids inside it (Sect. 4.11); a reaction id
  in a formula stands for its rate and a species reference id for its stoichiometry
  (Sect. 4.11).
* A relation that compares time with a function of inputs, ``a time + b`` against 0 (in a
  piecewise), makes the right-hand side jump at ``-b / a``: those times are the
  model's switches (:meth:`pystiffsens.sbml.Model.switch_times`).

Refused (``NotSupported``): algebraic rules, fast reactions, reactions without kinetic law,
rate rules on species references, events that assign compartments, events with delays or
priorities, event triggers other than ``time >= f(inputs)`` (and its variants), and math with
``delay``/``rateOf``.
"""

from __future__ import annotations

import dataclasses
import math

import libsbml
import sympy

from .errors import not_supported
from .jaxify import NAN_TO, Definition, Program
from .mathml import TIME, number, to_sympy

AMOUNT_PREFIX = "@amount:"  # env name of the amount state of a concentration species
RAW_PREFIX = "@p:"  # env name of the caller's value of an input with an initial assignment


@dataclasses.dataclass(frozen=True)
class EventSpec:
    id: str
    time: sympy.Expr  # the trigger time, a function of inputs
    initial_value: bool
    assignments: tuple[tuple[str, sympy.Basic], ...]


@dataclasses.dataclass(frozen=True)
class Translation:
    """Everything :class:`pystiffsens.sbml.Model` evaluates, as named quantities (see the module docstring)."""

    source: str
    model_id: str
    ids: frozenset[str]  # every id a formula may name
    species_ids: tuple[str, ...]
    only_substance: dict[str, bool]  # species id -> hasOnlySubstanceUnits
    compartment_of: dict[str, str]  # species id -> compartment id
    state_ids: tuple[str, ...]
    state_kinds: tuple[str, ...]  # "concentration", "amount" or "value": what y holds
    state_bases: tuple[str, ...]  # env name of y[i]
    parameter_ids: tuple[str, ...]
    defaults: dict[str, float]
    input_bases: dict[str, str]  # parameter id -> env name of p[id]
    with_initial_assignment: frozenset[str]  # parameter ids an initial assignment sets when absent/NaN
    overridable_species: tuple[str, ...]  # non-state species whose value p may set
    definitions: dict[str, Definition]  # quantities at time t, in terms of time, states and inputs
    derivatives: tuple[sympy.Basic, ...]
    initial_definitions: dict[str, Definition]  # quantities at t0, in terms of time and inputs
    initial_outputs: tuple[sympy.Basic, ...]  # the state vector at t0
    events: tuple[EventSpec, ...]
    switches: tuple[sympy.Basic, ...] = ()  # times at which a condition comparing time with inputs changes

    def rhs_bases(self, overrides=()) -> frozenset[str]:
        inputs = (self.input_bases[k] for k in self.parameter_ids if k not in self.state_ids)
        return frozenset((TIME.name, *self.state_bases, *inputs, *overrides))

    def initial_bases(self, overrides=()) -> frozenset[str]:
        return frozenset((TIME.name, *self.input_bases.values(), *overrides))


def _where(rule) -> str:
    return f"the {rule.getElementName()} for {rule.getVariable()!r}"


def translate(doc: libsbml.SBMLDocument, source: str) -> Translation:
    """The :class:`Translation` of a read document (:func:`pystiffsens.sbml.reader.read`)."""
    model = doc.getModel()
    compartments = {c.getId(): c for c in model.getListOfCompartments()}
    species = {s.getId(): s for s in model.getListOfSpecies()}
    parameters = {p.getId(): p for p in model.getListOfParameters()}
    reactions = {r.getId(): r for r in model.getListOfReactions()}
    references = {
        sr.getId(): sr
        for r in reactions.values()
        for sr in (*r.getListOfReactants(), *r.getListOfProducts())
        if sr.isSetId()
    }
    ids = frozenset((*compartments, *species, *parameters, *reactions, *references))

    def expr(math_ast, where: str, local=None) -> sympy.Basic:
        if math_ast is None:
            raise ValueError(f"{source}: {where} has no math.")

        def resolve(name: str) -> sympy.Expr:
            if local and name in local:
                return local[name]
            if name in ids:
                return sympy.Symbol(name)
            raise ValueError(f"{source}: {where} uses {name!r}, which is not an id of the model.")

        return to_sympy(math_ast, resolve, where, source)

    assignment: dict[str, sympy.Basic] = {}
    rate: dict[str, sympy.Basic] = {}
    for i, rule in enumerate(model.getListOfRules()):
        if rule.isAlgebraic():
            raise not_supported(
                "an algebraic rule",
                f"rule #{i + 1} of the model, {libsbml.formulaToL3String(rule.getMath())!r}",
                source,
                "rewrite it as an assignment or rate rule.",
            )
        (assignment if rule.isAssignment() else rate)[rule.getVariable()] = expr(rule.getMath(), _where(rule))
    initial = {
        ia.getSymbol(): expr(ia.getMath(), f"the initial assignment to {ia.getSymbol()!r}")
        for ia in model.getListOfInitialAssignments()
    }
    for rid in references:
        if rid in rate:
            raise not_supported("a rate rule on a species reference", f"species reference {rid!r}", source)
    for cid in compartments:
        if cid in rate and compartments[cid].getSpatialDimensionsAsDouble() == 0:
            raise ValueError(f"{source}: compartment {cid!r} has spatialDimensions 0 and a rate rule; it has no size.")
    variable_size = {cid for cid in compartments if cid in rate or cid in assignment}
    event_targets = {
        ea.getVariable(): event for event in model.getListOfEvents() for ea in event.getListOfEventAssignments()
    }
    for target, event in event_targets.items():
        if target in compartments:
            raise not_supported(
                "an event assignment to a compartment", f"event {event.getId()!r} assigning {target!r}", source
            )
        if target in references or target not in ids:
            raise not_supported(
                "an event assignment to something other than a species or parameter",
                f"event {event.getId()!r} assigning {target!r}",
                source,
            )
        if target in assignment or target in reactions:
            raise ValueError(f"{source}: event {event.getId()!r} assigns {target!r}, which an assignment rule sets.")

    definitions: dict[str, sympy.Basic] = dict(assignment)
    initial_state_definitions: dict[str, sympy.Basic] = {}
    state_ids, kinds, bases, derivative_of = [], [], [], {}
    overridable = []

    def size(cid: str) -> sympy.Basic:
        if cid not in compartments:
            raise ValueError(f"{source}: a species lies in the compartment {cid!r}, which the model does not define.")
        if compartments[cid].getSpatialDimensionsAsDouble() == 0:
            raise not_supported(
                "a species with concentration semantics in a 0-dimensional compartment",
                f"compartment {cid!r}",
                source,
                "set hasOnlySubstanceUnits='true' on its species.",
            )
        return sympy.Symbol(cid)

    def file_value(s) -> sympy.Basic:
        """The species's formula value at t0 from initialConcentration/initialAmount, or its initial assignment."""
        sid = s.getId()
        if sid in initial:
            return initial[sid]
        concentration = not s.getHasOnlySubstanceUnits()
        if s.isSetInitialConcentration():
            value = number(s.getInitialConcentration())
            return value if concentration else value * size(s.getCompartment())
        if s.isSetInitialAmount():
            value = number(s.getInitialAmount())
            return value / size(s.getCompartment()) if concentration else value
        return sympy.nan

    # -- reactions: rates and each species's net change of amount
    change: dict[str, sympy.Basic] = {sid: sympy.Integer(0) for sid in species}
    for rid, r in reactions.items():
        if r.isSetFast() and r.getFast():
            raise not_supported(
                "a fast reaction", f"reaction {rid!r}", source, "set fast='false' or remove the reaction."
            )
        law = r.getKineticLaw()
        if law is None or not law.isSetMath():
            raise not_supported("a reaction without a kinetic law", f"reaction {rid!r}", source)
        local = {p.getId(): number(p.getValue()) for p in law.getListOfParameters()}
        local.update({p.getId(): number(p.getValue()) for p in law.getListOfLocalParameters()})
        definitions[rid] = expr(law.getMath(), f"the kinetic law of reaction {rid!r}", local)
        for sign, refs in ((-1, r.getListOfReactants()), (1, r.getListOfProducts())):
            for sr in refs:
                change[sr.getSpecies()] += (
                    sign
                    * _stoichiometry(sr, doc.getLevel(), definitions, initial, assignment, expr, rid, source)
                    * sympy.Symbol(rid)
                )

    # -- species
    model_factor = model.getConversionFactor() if model.isSetConversionFactor() else ""
    for sid, s in species.items():
        cid = s.getCompartment()
        concentration = not s.getHasOnlySubstanceUnits()
        if sid in assignment:
            continue
        if s.getConstant() or (
            s.getBoundaryCondition() and sid not in rate and cid not in variable_size and sid not in event_targets
        ):
            for what, present in (("a rate rule", sid in rate), ("an event assignment", sid in event_targets)):
                if present:
                    raise ValueError(f"{source}: species {sid!r} is constant but has {what}.")
            definitions[sid] = file_value(s)
            overridable.append(sid)
            continue
        state_ids.append(sid)
        initial_state_definitions[sid] = file_value(s)
        if sid in rate:
            if change[sid] != 0 and not s.getBoundaryCondition():
                raise ValueError(
                    f"{source}: species {sid!r} has a rate rule and takes part in reactions; SBML allows "
                    "that only for boundary species (L3V2 Sect. 4.6)."
                )
            kinds.append("concentration" if concentration else "amount")
            bases.append(sid)
            derivative_of[sid] = rate[sid]
            continue
        factor = s.getConversionFactor() if s.isSetConversionFactor() else model_factor
        net = sympy.Integer(0) if s.getBoundaryCondition() else change[sid] * (sympy.Symbol(factor) if factor else 1)
        if concentration and cid in variable_size:
            kinds.append("amount")
            bases.append(AMOUNT_PREFIX + sid)
            definitions[sid] = sympy.Symbol(AMOUNT_PREFIX + sid) / size(cid)
            derivative_of[sid] = net
        else:
            kinds.append("concentration" if concentration else "amount")
            bases.append(sid)
            derivative_of[sid] = net / size(cid) if concentration else net

    # -- parameters and compartments: inputs, rule-set quantities and states
    parameter_ids, defaults, input_bases = [], {}, {}
    for qid, q in (*compartments.items(), *parameters.items()):
        if qid in assignment:
            continue
        is_compartment = qid in compartments
        raw = (
            (q.getSize() if q.isSetSize() else math.nan)
            if is_compartment
            else (q.getValue() if q.isSetValue() else math.nan)
        )
        if qid in rate:
            state_ids.append(qid)
            kinds.append("value")
            bases.append(qid)
            derivative_of[qid] = rate[qid]
            initial_state_definitions[qid] = initial.get(qid, number(raw))
            continue
        parameter_ids.append(qid)
        defaults[qid] = math.nan if qid in initial else raw
        input_bases[qid] = RAW_PREFIX + qid if qid in initial else qid
        if qid in event_targets:
            state_ids.append(qid)
            kinds.append("value")
            bases.append(qid)
            derivative_of[qid] = sympy.Integer(0)

    compiled = {name: Definition.of(e) for name, e in definitions.items()}
    for qid in parameter_ids:  # an input with an initial assignment: the assignment where the caller's value is NaN
        # (Model._inputs makes an absent value NaN)
        if qid in initial:
            compiled[qid] = Definition.of(NAN_TO(sympy.Symbol(RAW_PREFIX + qid), initial[qid]))
    translation = Translation(
        source=source,
        model_id=model.getId(),
        ids=ids,
        species_ids=tuple(species),
        only_substance={sid: s.getHasOnlySubstanceUnits() for sid, s in species.items()},
        compartment_of={sid: s.getCompartment() for sid, s in species.items()},
        state_ids=tuple(state_ids),
        state_kinds=tuple(kinds),
        state_bases=tuple(bases),
        parameter_ids=tuple(parameter_ids),
        defaults=defaults,
        input_bases=input_bases,
        with_initial_assignment=frozenset(q for q in parameter_ids if q in initial),
        overridable_species=tuple(overridable),
        definitions=compiled,
        derivatives=tuple(derivative_of[q] for q in state_ids),
        initial_definitions={**compiled, **{q: Definition.of(e) for q, e in initial_state_definitions.items()}},
        initial_outputs=tuple(
            sympy.Symbol(q) * sympy.Symbol(species[q].getCompartment())
            if base.startswith(AMOUNT_PREFIX)
            else sympy.Symbol(q)
            for q, base in zip(state_ids, bases)
        ),
        events=(),
    )
    constant = [q for q in (*parameter_ids, *references) if q in initial and q not in state_ids and q not in assignment]
    _check_constant(translation, constant + overridable, "an initial assignment or initial value", source)
    events = tuple(_event(event, expr, translation, source) for event in model.getListOfEvents())
    switches = _switches((*definitions.values(), *derivative_of.values()), translation, source)
    return dataclasses.replace(translation, events=events, switches=switches)


def _stoichiometry(sr, level, definitions, initial, assignment, expr, rid, source) -> sympy.Basic:
    """A species reference's stoichiometry: a number, or its id where rules or initial assignments set it."""
    if level == 2 and sr.isSetStoichiometryMath():
        return expr(
            sr.getStoichiometryMath().getMath(), f"the stoichiometryMath of {sr.getSpecies()!r} in reaction {rid!r}"
        )
    if (
        level >= 3
        and not sr.isSetStoichiometry()
        and not (sr.isSetId() and (sr.getId() in initial or sr.getId() in assignment))
    ):
        raise ValueError(f"{source}: the stoichiometry of species {sr.getSpecies()!r} in reaction {rid!r} is not set.")
    value = number(sr.getStoichiometry()) if sr.isSetStoichiometry() or level < 3 else sympy.nan
    if not sr.isSetId():
        return value
    sid = sr.getId()
    if sid not in assignment:
        definitions[sid] = initial.get(sid, value)
    return sympy.Symbol(sid)


def _check_constant(translation: Translation, names, what: str, source: str) -> None:
    """Quantities evaluated at every time from inputs alone must not depend on time or states."""
    allowed = {translation.input_bases[k] for k in translation.parameter_ids} | set(translation.overridable_species)
    for name in names:
        program = Program(translation.definitions, translation.rhs_bases(), [sympy.Symbol(name)], source, repr(name))
        bad = program.used_bases - allowed - {name}
        if bad:
            shown = sorted(b.removeprefix(AMOUNT_PREFIX).replace(TIME.name, "time") for b in bad)
            raise not_supported(
                f"{what} that depends on time or on state variables {shown}",
                f"{name!r}",
                source,
                "such a quantity must be a function of parameters and compartments.",
            )


def _event(event, expr, translation: Translation, source: str) -> EventSpec:
    eid = event.getId() if event.isSetId() else "(no id)"
    where = f"event {eid!r}"
    if event.isSetDelay():
        raise not_supported("an event with a delay", where, source)
    if event.isSetPriority():
        raise not_supported("an event with a priority", where, source)
    trigger = event.getTrigger()
    if trigger is None or not trigger.isSetMath():
        raise ValueError(f"{source}: {where} has no trigger.")
    condition = expr(trigger.getMath(), f"the trigger of {where}")
    at = _trigger_time(condition)
    if at is None:
        raise not_supported(
            f"an event trigger other than 'time >= expression' ({libsbml.formulaToL3String(trigger.getMath())})",
            where,
            source,
            "only time-triggered events are translated.",
        )
    allowed = {translation.input_bases[k] for k in translation.parameter_ids} | set(translation.overridable_species)
    program = Program(translation.definitions, translation.rhs_bases(), [at], source, f"the trigger of {where}")
    if program.used_bases - allowed:
        raise not_supported(
            "an event trigger time that depends on state variables",
            where,
            source,
            "the trigger must compare time with a function of parameters and compartments.",
        )
    initial_value = trigger.getInitialValue() if trigger.isSetInitialValue() else True
    assignments = tuple(
        (ea.getVariable(), expr(ea.getMath(), f"the assignment to {ea.getVariable()!r} of {where}"))
        for ea in event.getListOfEventAssignments()
    )
    return EventSpec(eid, at, bool(initial_value), assignments)


def _switches(expressions, translation: Translation, source: str) -> tuple[sympy.Basic, ...]:
    """The times ``T`` at which a condition in ``expressions`` that compares time with inputs changes value.

    Every relation whose two sides differ by ``a time + b`` (``a`` a nonzero number, ``b`` free of
    time), with ``T = -b / a`` a function of parameters and compartments: ``time - Fsk_time < 0`` in
    a piecewise gives ``Fsk_time``. Relations that also depend on states are left out (a solve
    cannot know in advance when they change); so are those with ``T`` depending on time otherwise.
    """
    allowed = {translation.input_bases[k] for k in translation.parameter_ids} | set(translation.overridable_species)
    found: dict[sympy.Basic, None] = {}
    for expression in expressions:
        for relation in sympy.sympify(expression).atoms(sympy.core.relational.Relational):
            if TIME not in relation.free_symbols:
                continue
            at = _crossing(relation.lhs - relation.rhs)
            if at is None or at[0] in found:
                continue
            program = Program(translation.definitions, translation.rhs_bases(), [at[0]], source, "a switch in time")
            if not program.used_bases - allowed:
                found[at[0]] = None
    return tuple(found)


def _crossing(difference: sympy.Basic) -> tuple[sympy.Basic, sympy.Basic] | None:
    """``(T, a)`` for ``difference = a (time - T)`` with ``a`` a nonzero number and ``T`` free of time, else None."""
    slope = sympy.diff(difference, TIME)
    if not slope.is_number or slope == 0:
        return None
    rest = sympy.expand(difference - slope * TIME)
    if TIME in rest.free_symbols:
        return None
    return -rest / slope, slope


def _trigger_time(condition: sympy.Basic) -> sympy.Basic | None:
    """``T`` for a trigger equivalent to ``time >= T`` (or ``>``) with ``T`` free of time, else None."""
    if isinstance(condition, (sympy.Ge, sympy.Gt)):
        difference = condition.lhs - condition.rhs
    elif isinstance(condition, (sympy.Le, sympy.Lt)):
        difference = condition.rhs - condition.lhs
    else:
        return None
    at = _crossing(difference)
    return at[0] if at is not None and at[1] > 0 else None
