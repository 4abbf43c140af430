"""The SBML translator (pystiffsens.sbml): semantics against closed forms and scipy, refusals, a benchmark model.

Every test runs in both program layouts (``layout="auto"`` is steered by ``SCALAR_UP_TO``).
"""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import libsbml
import numpy as np
import pytest
import sympy
from conftest import equations
from scipy.integrate import solve_ivp

import pystiffsens as pss
from pystiffsens import sbml

BOEHM = Path(__file__).parent / "data" / "petab" / "Boehm_JProteomeRes2014" / "model_Boehm_JProteomeRes2014.xml"


@pytest.fixture(autouse=True, params=["scalar", "vectorised"])
def layout(request, monkeypatch):
    """Each test once per layout: ``sbml.load``'s automatic choice forced to it."""
    monkeypatch.setattr(sbml.model, "SCALAR_UP_TO", 10**9 if request.param == "scalar" else -1)
    return request.param


def test_layouts_agree_and_differ_in_size(layout):
    """The two layouts give the same right-hand side and Jacobian; the vectorised one is fewer operations."""
    model = sbml.load(BOEHM)
    assert model.layout == layout
    other = sbml.load(BOEHM, layout="scalar" if layout == "vectorised" else "vectorised")
    p = dict(model.defaults)
    y = jnp.linspace(0.5, 4.0, 8)
    np.testing.assert_allclose(model.rhs(2.0, y, p), other.rhs(2.0, y, p), rtol=1e-14)
    jacobians = [jax.jacfwd(m.rhs, argnums=1)(2.0, y, p) for m in (model, other)]
    np.testing.assert_allclose(*jacobians, rtol=1e-14, atol=1e-300)
    sizes = {m.layout: len(jax.make_jaxpr(lambda y, m=m: m.rhs(2.0, y, p))(y).jaxpr.eqns) for m in (model, other)}
    assert sizes["vectorised"] < sizes["scalar"], sizes
    with pytest.raises(ValueError, match=r"layout='dense' is not a program layout; valid: \['auto', 'scalar', 'vectorised'\]"):
        sbml.load(BOEHM, layout="dense")


def _math(node, formula):
    ast = libsbml.parseL3Formula(formula)
    assert ast is not None, libsbml.getLastParseL3Error()
    assert node.setMath(ast) == libsbml.LIBSBML_OPERATION_SUCCESS


def build(
    *,
    compartments=(("c", 1.0),),
    species=(),
    parameters=(),
    reactions=(),
    assignment_rules=(),
    rate_rules=(),
    initial_assignments=(),
    functions=(),
    events=(),
    algebraic_rules=(),
    level=3,
    version=2,
):
    """SBML text of a model built with libsbml from compact descriptions (formulas in L3 infix).

    species: dicts with id, compartment (default: the first), conc or amount (initial value), hosu, boundary, constant,
        factor (conversion factor);
    reactions: (id, reactants, products, rate formula, {local parameter: value}), each reactant and product
        (species, stoichiometry) or (species, stoichiometry, species reference id);
    events: (id, trigger, [(variable, formula)]) or dicts adding delay, priority, initial_value.
    """
    doc = libsbml.SBMLDocument(level, version)
    model = doc.createModel()
    model.setId("test_model")
    for cid, size in compartments:
        c = model.createCompartment()
        c.setId(cid), c.setConstant(True), c.setSpatialDimensions(3)
        if size is not None:
            c.setSize(size)
    for spec in species:
        s = model.createSpecies()
        s.setId(spec["id"]), s.setCompartment(spec.get("compartment", compartments[0][0]))
        s.setHasOnlySubstanceUnits(spec.get("hosu", False)), s.setBoundaryCondition(spec.get("boundary", False))
        s.setConstant(spec.get("constant", False))
        if "conc" in spec:
            s.setInitialConcentration(spec["conc"])
        if "amount" in spec:
            s.setInitialAmount(spec["amount"])
        if "factor" in spec:
            s.setConversionFactor(spec["factor"])
    for pid, value, constant in parameters:
        p = model.createParameter()
        p.setId(pid), p.setConstant(constant)
        if value is not None:
            p.setValue(value)
    for fid, formula in functions:
        fd = model.createFunctionDefinition()
        fd.setId(fid), _math(fd, formula)
    for rid, reactants, products, rate, local in reactions:
        r = model.createReaction()
        r.setId(rid), r.setReversible(False)
        for create, references in ((r.createReactant, reactants), (r.createProduct, products)):
            for sid, stoich, *ref_id in references:
                sr = create()
                sr.setSpecies(sid), sr.setStoichiometry(stoich), sr.setConstant(not ref_id)
                if ref_id:
                    sr.setId(ref_id[0])
        if rate is None:
            continue
        law = r.createKineticLaw()
        _math(law, rate)
        for lid, value in local.items():
            lp = law.createLocalParameter()
            lp.setId(lid), lp.setValue(value)
    for variable, formula in assignment_rules:
        rule = model.createAssignmentRule()
        rule.setVariable(variable), _math(rule, formula)
    for variable, formula in rate_rules:
        rule = model.createRateRule()
        rule.setVariable(variable), _math(rule, formula)
    for formula in algebraic_rules:
        _math(model.createAlgebraicRule(), formula)
    for symbol, formula in initial_assignments:
        ia = model.createInitialAssignment()
        ia.setSymbol(symbol), _math(ia, formula)
    for spec in events:
        spec = spec if isinstance(spec, dict) else dict(zip(("id", "trigger", "assign"), spec))
        e = model.createEvent()
        e.setId(spec["id"]), e.setUseValuesFromTriggerTime(True)
        trigger = e.createTrigger()
        trigger.setInitialValue(spec.get("initial_value", True)), trigger.setPersistent(True)
        _math(trigger, spec["trigger"])
        if "delay" in spec:
            _math(e.createDelay(), spec["delay"])
        if "priority" in spec:
            _math(e.createPriority(), spec["priority"])
        for variable, formula in spec["assign"]:
            ea = e.createEventAssignment()
            ea.setVariable(variable), _math(ea, formula)
    return libsbml.writeSBMLToString(doc)


def _write(tmp_path, text, name="model.xml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _integrate(model, p, t_end, y0=None, rtol=1e-12):
    """The model's states at t_end by scipy's Radau on model.rhs (jit-compiled)."""
    rhs = jax.jit(model.rhs)
    jac = jax.jit(jax.jacfwd(model.rhs, argnums=1))
    y0 = model.initial_state(p) if y0 is None else y0
    sol = solve_ivp(
        lambda t, y: np.asarray(rhs(t, y, p)),
        (0.0, t_end),
        np.asarray(y0),
        method="Radau",
        rtol=rtol,
        atol=1e-13,
        jac=lambda t, y: np.asarray(jac(t, y, p)),
    )
    assert sol.success
    return sol.y[:, -1]


# -- semantics


def test_concentration_and_amount_species_in_a_compartment_of_size_2_5():
    # A and C stand for concentrations, B for an amount; the same rate law k*X removes amount per time,
    # so the concentration falls V = 2.5 times slower than the amount.
    model = sbml.load(
        build(
            compartments=[("c", 2.5)],
            species=[
                {"id": "A", "conc": 2.0},
                {"id": "B", "amount": 2.0, "hosu": True},
                {"id": "C", "amount": 5.0},
                {"id": "D", "conc": 3.0, "hosu": True},
            ],
            parameters=[("k", 0.7, True)],
            reactions=[
                ("rA", [("A", 1)], [], "k * A", {}),
                ("rB", [("B", 1)], [], "k * B", {}),
                ("rC", [("C", 2)], [("D", 1)], "k * C", {}),
            ],
        )
    )
    assert model.state_ids == ("A", "B", "C", "D")
    assert model.state_kinds == ("concentration", "amount", "concentration", "amount")
    p = dict(model.defaults)
    y0 = model.initial_state(p)
    np.testing.assert_allclose(
        y0, [2.0, 2.0, 5.0 / 2.5, 3.0 * 2.5], rtol=1e-15
    )  # initialAmount/V, initialConcentration*V
    np.testing.assert_allclose(
        model.rhs(0.0, y0, p), [-0.7 * 2.0 / 2.5, -0.7 * 2.0, -2 * 0.7 * 2.0 / 2.5, 0.7 * 2.0], rtol=1e-14
    )
    t_end = 3.0
    exact = [2.0 * math.exp(-0.7 * t_end / 2.5), 2.0 * math.exp(-0.7 * t_end)]
    np.testing.assert_allclose(_integrate(model, p, t_end)[:2], exact, rtol=1e-9)


def test_boundary_species_change_only_by_rules():
    # S is a boundary reactant (constant: not a state); R is a boundary species with a rate rule.
    model = sbml.load(
        build(
            compartments=[("c", 2.0)],
            species=[
                {"id": "S", "conc": 4.0, "boundary": True},
                {"id": "R", "conc": 1.0, "boundary": True},
                {"id": "P", "conc": 0.0},
            ],
            parameters=[("k", 0.3, True)],
            reactions=[("conv", [("S", 1), ("R", 1)], [("P", 1)], "k * S * R * c", {})],
            rate_rules=[("R", "-k * R")],
        )
    )
    assert model.state_ids == ("R", "P") and "S" in model.species_ids
    p = dict(model.defaults)
    y = _integrate(model, p, 2.0)
    r_exact = math.exp(-0.3 * 2.0)  # R by its rule only, P gains k*S*R (c cancels)
    np.testing.assert_allclose(y, [r_exact, 4.0 * (1.0 - r_exact)], rtol=1e-9)
    # p may set a constant species's value; the initial state cannot (it is not a state)
    np.testing.assert_allclose(model.rhs(0.0, jnp.array([1.0, 0.0]), {**p, "S": 2.0})[1], 0.3 * 2.0)
    with pytest.raises(ValueError, match=r"'S'.*not state variables"):
        model.initial_state(p, species={"S": 1.0})


def test_rate_rule_on_a_parameter_matches_the_closed_form():
    model = sbml.load(
        build(
            species=[{"id": "A", "conc": 3.0}],
            parameters=[("k", 2.0, False), ("a", 0.5, True)],
            reactions=[("decay", [("A", 1)], [], "k * A", {})],
            rate_rules=[("k", "-a * k")],
        )
    )
    assert model.state_ids == ("A", "k") and "k" not in model.parameter_ids
    t = 1.7
    exact = [3.0 * math.exp(-(2.0 / 0.5) * (1 - math.exp(-0.5 * t))), 2.0 * math.exp(-0.5 * t)]
    np.testing.assert_allclose(_integrate(model, dict(model.defaults), t), exact, rtol=1e-9)


def test_assignment_rules_out_of_document_order_and_an_initial_assignment_that_uses_them():
    model = sbml.load(
        build(
            species=[{"id": "A", "conc": 0.0}],
            parameters=[("k", 0.5, True), ("x", None, False), ("w", None, False), ("z", None, False)],
            reactions=[("make", [], [("A", 1)], "z", {})],
            assignment_rules=[("z", "2 * w"), ("w", "x + 1"), ("x", "k * time")],  # each uses the next
            initial_assignments=[("A", "3 * w")],
        )
    )
    assert model.parameter_ids == ("c", "k")
    p = dict(model.defaults)
    np.testing.assert_allclose(model.compile("z")(3.0, jnp.zeros(1), p), 2 * (0.5 * 3 + 1))
    np.testing.assert_allclose(model.rhs(3.0, jnp.zeros(1), p), [2 * (0.5 * 3 + 1)])
    np.testing.assert_allclose(model.initial_state(p), [3 * (0.5 * 0 + 1)])  # rules at t0 = 0
    np.testing.assert_allclose(model.initial_state(p, t0=2.0), [3 * (0.5 * 2 + 1)])


def test_function_definitions_and_local_parameters():
    model = sbml.load(
        build(
            species=[{"id": "A", "conc": 2.0}, {"id": "B", "conc": 1.0}],
            parameters=[("k", 100.0, True)],
            functions=[("f", "lambda(x, y, x * y + 1)")],
            reactions=[("r1", [("A", 1)], [("B", 1)], "f(k, A)", {"k": 0.25})],  # the local k shadows the global one
        )
    )
    np.testing.assert_allclose(model.rhs(0.0, jnp.array([2.0, 1.0]), model.defaults), [-1.5, 1.5])
    np.testing.assert_allclose(model.compile("r1 + k")(0.0, jnp.array([2.0, 1.0]), model.defaults), 1.5 + 100.0)


def test_stoichiometry_given_by_species_reference_ids_and_conversion_factors():
    model = sbml.load(
        build(
            species=[{"id": "A", "conc": 1.0}, {"id": "B", "conc": 0.0, "factor": "cf"}, {"id": "C", "conc": 0.0}],
            parameters=[("n", 3.0, True), ("k", 0.5, True), ("cf", 10.0, True)],
            reactions=[("r", [("A", 1, "sA")], [("B", 1, "sB"), ("C", 1, "sC")], "k * A", {})],
            initial_assignments=[("sA", "n - 1")],  # sB keeps its value 1; an assignment rule sets sC
            assignment_rules=[("sC", "n * time")],
        )
    )
    rate = 0.5 * 2.0
    np.testing.assert_allclose(
        model.rhs(4.0, jnp.array([2.0, 0.0, 0.0]), model.defaults), [-2 * rate, 10 * rate, 12 * rate]
    )
    np.testing.assert_allclose(model.compile("sA + sB")(0.0, jnp.zeros(3), {**model.defaults, "n": 5.0}), 4.0 + 1.0)


def test_piecewise_value_and_gradient():
    model = sbml.load(
        build(
            parameters=[("a", 2.0, True), ("b", 5.0, True), ("ts", 1.0, True), ("u", None, False)],
            assignment_rules=[("u", "piecewise(a * time^2, time < ts, b * a)")],
        )
    )
    u = model.compile("u")
    p = {k: jnp.float64(v) for k, v in model.defaults.items()}
    y = jnp.zeros(0)
    for t, value, da, db in [(0.5, 2 * 0.25, 0.25, 0.0), (2.0, 10.0, 5.0, 2.0)]:
        np.testing.assert_allclose(u(t, y, p), value)
        grad = jax.grad(lambda q: u(t, y, q))(p)
        np.testing.assert_allclose([grad["a"], grad["b"], grad["ts"]], [da, db, 0.0])
        np.testing.assert_allclose(jax.grad(lambda s: u(s, y, p))(t), 2 * 2.0 * t if t < 1 else 0.0)


def test_switch_times_are_where_conditions_on_time_change():
    """Relations linear in time against parameters are switches, whichever side time is on; one on a state is not."""
    model = sbml.load(
        build(
            species=[{"id": "S", "conc": 1.0}],
            parameters=[("ts", 1.0, True), ("k", 4.0, True), *((v, None, False) for v in ("u", "v", "w", "z"))],
            assignment_rules=[("u", "piecewise(1, time < ts, 0)"), ("v", "piecewise(1, k >= time, 0)"),
                              ("w", "piecewise(1, 2 * time - k > 0, 0)"), ("z", "piecewise(1, S < time, 0)")],
            reactions=[("r", [], [("S", 1)], "u + v + w + z", {})],
        )
    )
    assert sorted(model.switches) == ["k", "k/2", "ts"]
    times = dict(zip(model.switches, np.asarray(model.switch_times({"ts": 1.5, "k": 3.0}))))
    assert times == {"ts": 1.5, "k": 3.0, "k/2": 1.5}
    assert sbml.load(build(parameters=[("a", 1.0, True)])).switch_times({"a": 1.0}).shape == (0,)


def test_jacobian_sparsity_follows_rules_branches_and_rate_rules():
    """The pattern reaches states through assignment rules and both branches of a piecewise, and is what
    ``model.problem`` solves with (a SparseRHS)."""
    model = sbml.load(
        build(
            species=[{"id": s, "conc": 1.0} for s in "ABCD"],
            parameters=[("k", 0.5, True), ("w", None, False), ("g", 0.3, False)],
            reactions=[
                ("r1", [("A", 1)], [("B", 1)], "k * A", {}),
                ("r2", [("C", 1)], [], "w", {}),  # C's loss reads D through the rule for w
            ],
            assignment_rules=[("w", "piecewise(D, time < 1, B * 2)")],
            rate_rules=[("g", "-g * A")],
        )
    )
    assert model.state_ids == ("A", "B", "C", "D", "g")
    rows = {"A": {"A"}, "B": {"A"}, "C": {"B", "D"}, "D": set(), "g": {"g", "A"}}  # C: both branches of w
    expected = np.array([[col in rows[row] for col in model.state_ids] for row in model.state_ids])
    np.testing.assert_array_equal(model.jacobian_sparsity.mask, expected)
    problem = model.problem(tspan=(0.0, 2.0))
    assert problem.rhs.jac_sparsity == pss.SparseRHS(model.rhs, expected).jac_sparsity
    np.testing.assert_allclose(pss.solve(problem, "Rodas5P").ys, pss.solve(problem.replace(rhs=model.rhs), "Rodas5P").ys,
                               rtol=1e-13)


def test_initial_state_overrides_and_the_nan_rule_for_initial_assignments():
    model = sbml.load(
        build(
            compartments=[("c", 2.0)],
            species=[{"id": "A", "conc": 1.0}, {"id": "B", "amount": 4.0, "hosu": True}],
            parameters=[("k", 3.0, True), ("k2", 1.0, True)],
            reactions=[("r", [("A", 1)], [("B", 1)], "k2 * A", {})],
            initial_assignments=[("k2", "2 * k")],
        )
    )
    assert math.isnan(model.defaults["k2"]) and model.assigned_parameter_ids == ("k2",)  # set by its initial assignment
    p = dict(model.defaults)
    np.testing.assert_allclose(model.rhs(0.0, jnp.array([1.0, 4.0]), p), [-6.0 / 2.0, 6.0])
    np.testing.assert_allclose(model.rhs(0.0, jnp.array([1.0, 4.0]), {**p, "k2": 1.5}), [-1.5 / 2.0, 1.5])
    without = {"c": 2.0, "k": 3.0}  # absent is NaN: the assignment, and its gradient reaches k
    np.testing.assert_allclose(model.rhs(0.0, jnp.array([1.0, 4.0]), without), [-6.0 / 2.0, 6.0])
    np.testing.assert_allclose(
        jax.grad(lambda k: model.rhs(0.0, jnp.array([1.0, 4.0]), {**without, "k": k})[1])(3.0), 2.0
    )
    assert set(model.problem(tspan=(0.0, 1.0)).params) == {"c", "k"}
    # overrides in each species's own units; NaN keeps the value; y= replaces the file's values
    np.testing.assert_allclose(model.initial_state(p, species={"A": 7.0, "B": jnp.nan}), [7.0, 4.0])
    np.testing.assert_allclose(model.initial_state(p, species={"B": 9.0}, y=jnp.array([0.5, 0.25])), [0.5, 9.0])
    grad = jax.grad(lambda v: model.initial_state(p, species={"A": v})[0])(2.0)
    np.testing.assert_allclose(grad, 1.0)


def test_a_compartment_with_a_rate_rule_keeps_amounts():
    # V grows linearly; A leaves at kd*[A]*V amount per time, so its amount decays as exp(-kd t) and [A] = amount / V.
    model = sbml.load(
        build(
            compartments=[("V", 2.0)],
            species=[{"id": "A", "conc": 3.0}],
            parameters=[("kd", 0.4, True), ("g", 0.5, True)],
            reactions=[("out", [("A", 1)], [], "kd * A * V", {})],
            rate_rules=[("V", "g")],
        )
    )
    assert model.state_ids == ("A", "V") and model.state_kinds == ("amount", "value")
    p = dict(model.defaults)
    np.testing.assert_allclose(model.initial_state(p), [6.0, 2.0])
    t = 2.0
    y = _integrate(model, p, t)
    np.testing.assert_allclose(y, [6.0 * math.exp(-0.4 * t), 2.0 + 0.5 * t], rtol=1e-9)
    np.testing.assert_allclose(model.compile("A")(t, jnp.asarray(y), p), y[0] / y[1], rtol=1e-14)
    # an override is a concentration, stored as amount
    np.testing.assert_allclose(model.initial_state(p, species={"A": 1.0}), [2.0, 2.0])


def test_time_triggered_event_assigns_species_and_parameters():
    model = sbml.load(
        build(
            compartments=[("c", 2.5)],
            species=[{"id": "A", "conc": 1.0}],
            parameters=[("k", 0.1, False), ("t_on", 4.0, True)],
            reactions=[("r", [("A", 1)], [], "k * A", {})],
            events=[
                ("dose", "time >= t_on + 1", [("A", "A + 2"), ("k", "2 * k + A")]),
                {"id": "late", "trigger": "2 * t_on < time", "assign": [("A", "0")], "initial_value": False},
            ],
        )
    )
    assert model.state_ids == ("A", "k") and "k" in model.parameter_ids
    dose, late = model.events
    assert (dose.id, dose.initial_value, late.id, late.initial_value) == ("dose", True, "late", False)
    p = dict(model.defaults)
    np.testing.assert_allclose([dose.time(p), late.time(p)], [5.0, 8.0])
    np.testing.assert_allclose(jax.grad(lambda v: dose.time({**p, "t_on": v}))(4.0), 1.0)
    y = jnp.array([0.5, 0.1])
    np.testing.assert_allclose(dose.assign(5.0, y, p), [2.5, 2 * 0.1 + 0.5])  # values from before the event
    np.testing.assert_allclose(model.rhs(0.0, jnp.array([0.5, 0.3]), p), [-0.3 * 0.5 / 2.5, 0.0])
    with pytest.raises(ValueError, match="events"):
        model.problem(tspan=(0.0, 1.0))


REFUSED = [
    (
        "algebraic",
        dict(species=[{"id": "A", "conc": 1.0}], parameters=[("x", 1.0, False)], algebraic_rules=["x - A"]),
        r"an algebraic rule.*x - A",
    ),
    (
        "delay",
        dict(
            species=[{"id": "A", "conc": 1.0}], parameters=[("x", 1.0, False)], assignment_rules=[("x", "delay(A, 2)")]
        ),
        r"the delay csymbol.*assignmentRule for 'x'",
    ),
    (
        "state_trigger",
        dict(species=[{"id": "A", "conc": 1.0}], events=[("e_state", "A < 0.5", [("A", "1")])]),
        r"an event trigger other than.*event 'e_state'",
    ),
    (
        "trigger_time_of_a_state",
        dict(species=[{"id": "A", "conc": 1.0}], events=[("e_st", "time > A", [("A", "1")])]),
        r"trigger time that depends on state variables.*event 'e_st'",
    ),
    (
        "event_delay",
        dict(
            species=[{"id": "A", "conc": 1.0}],
            events=[{"id": "e_delay", "trigger": "time > 1", "assign": [("A", "1")], "delay": "2"}],
        ),
        r"an event with a delay.*event 'e_delay'",
    ),
    (
        "event_priority",
        dict(
            species=[{"id": "A", "conc": 1.0}],
            events=[{"id": "e_prio", "trigger": "time > 1", "assign": [("A", "1")], "priority": "2"}],
        ),
        r"an event with a priority.*event 'e_prio'",
    ),
    (
        "event_compartment",
        dict(species=[{"id": "A", "conc": 1.0}], events=[("e_c", "time > 1", [("c", "2")])]),
        r"an event assignment to a compartment.*event 'e_c' assigning 'c'",
    ),
    (
        "no_kinetic_law",
        dict(species=[{"id": "A", "conc": 1.0}], reactions=[("r_nolaw", [("A", 1)], [], None, {})]),
        r"a reaction without a kinetic law.*reaction 'r_nolaw'",
    ),
    (
        "parameter_ia_of_a_species",
        dict(species=[{"id": "A", "conc": 1.0}], parameters=[("q", None, True)], initial_assignments=[("q", "2 * A")]),
        r"initial assignment.*depends on time or on state variables \['A'\].*'q'",
    ),
]


@pytest.mark.parametrize("case, spec, message", REFUSED, ids=[case for case, _, _ in REFUSED])
def test_refused_constructs_name_the_construct_the_element_and_the_file(tmp_path, case, spec, message):
    text = build(**spec)
    path = _write(tmp_path, text, f"{case}.xml")
    with pytest.raises(sbml.NotSupported, match=message) as error:
        sbml.load(path)
    assert str(error.value).startswith(str(path))


def test_fast_reactions_level_1_and_packages_are_refused(tmp_path):
    fast = build(
        level=3, version=1, species=[{"id": "A", "conc": 1.0}], reactions=[("r_fast", [("A", 1)], [], "A", {})]
    )
    fast = fast.replace('reversible="false"', 'reversible="false" fast="true"')
    with pytest.raises(sbml.NotSupported, match=r"a fast reaction \(reaction 'r_fast'\)"):
        sbml.load(fast)
    level1 = libsbml.SBMLDocument(1, 2)
    old = level1.createModel()
    old.setId("old")
    old.createCompartment().setId("c")
    path = _write(tmp_path, libsbml.writeSBMLToString(level1), "level1.xml")
    with pytest.raises(sbml.NotSupported, match=r"level1.xml: SBML Level 1"):
        sbml.load(path)
    comp = libsbml.SBMLDocument(libsbml.SBMLNamespaces(3, 1, "comp", 1))
    comp.setPackageRequired("comp", True)
    comp.createModel().setId("composed")
    with pytest.raises(sbml.NotSupported, match=r"<string>: the SBML package 'comp'"):
        sbml.load(libsbml.writeSBMLToString(comp))
    with pytest.raises(ValueError, match="not a file"):
        sbml.load(tmp_path / "missing.xml")


def test_compile_an_observable_with_placeholders(tmp_path):
    path = _write(
        tmp_path,
        build(
            compartments=[("V", 2.0)],
            species=[{"id": "A", "conc": 1.0}, {"id": "B", "amount": 3.0, "hosu": True}],
            parameters=[("scale", 4.0, True)],
        ),
    )
    model = sbml.load(path)
    obs = model.compile("scale * (A + B) / V + offset_obs + log(A) + log10(B) + t", extra=["offset_obs"])
    y = jnp.array([2.0, 5.0])
    expected = 4.0 * 7.0 / 2.0 + 0.5 + math.log(2.0) + math.log10(5.0) + 3.0
    np.testing.assert_allclose(obs(3.0, y, model.defaults, {"offset_obs": 0.5}), expected, rtol=1e-15)
    grad = jax.grad(lambda yy: obs(3.0, yy, model.defaults, {"offset_obs": 0.5}))(y)
    np.testing.assert_allclose(grad, [4.0 / 2.0 + 1 / 2.0, 4.0 / 2.0 + 1 / (5.0 * math.log(10))], rtol=1e-14)
    ts, ys = jnp.array([0.0, 1.0]), jnp.array([[2.0, 5.0], [4.0, 1.0]])  # along a trajectory, with vmap
    along = jax.vmap(obs, in_axes=(0, 0, None, None))(ts, ys, model.defaults, {"offset_obs": 0.5})
    np.testing.assert_allclose(along[1], 4.0 * 5.0 / 2.0 + 0.5 + math.log(4.0) + 0.0 + 1.0, rtol=1e-15)
    a, offset = sympy.symbols("A offset_obs", real=True)  # a sympy expression (as petab's parser makes) works too
    np.testing.assert_allclose(
        model.compile(a * 3 + offset, extra=["offset_obs"])(0.0, y, model.defaults, {"offset_obs": 1.0}), 7.0
    )
    with pytest.raises(ValueError, match=rf"{path}: the formula 'scale \* nope \+ nix' uses \['nix', 'nope'\]"):
        model.compile("scale * nope + nix")
    with pytest.raises(ValueError, match="two-argument log"):
        model.compile("log(2, A)")
    with pytest.raises(ValueError, match=r"needs extra_values for \['offset_obs'\]"):
        obs(0.0, y, model.defaults)
    assert set(obs.inputs(model.defaults)) == {"V", "scale"}  # what a caller gathering p per measurement needs
    with pytest.raises(ValueError, match=r"p lacks the parameters \['scale'\]"):
        obs(0.0, y, {"V": 2.0}, {"offset_obs": 0.5})


def test_to_jax_matches_symbols_by_name():
    x, y = sympy.Symbol("x", real=True), sympy.Symbol("y")
    f = sbml.to_jax(sympy.Piecewise((x * y, x < 1), (x + y, True)), ["x", "y"])
    np.testing.assert_allclose([f(0.5, 3.0), f(2.0, 3.0)], [1.5, 5.0])
    np.testing.assert_allclose(jax.vmap(jax.grad(f))(jnp.array([0.5, 2.0]), jnp.array([3.0, 3.0])), [3.0, 1.0])
    with pytest.raises(ValueError, match=r"free symbols \['y'\]"):
        sbml.to_jax(x * y, ["x"])


def test_gradient_through_solve_matches_central_differences():
    model = sbml.load(
        build(
            compartments=[("c", 1.5)],
            species=[{"id": "A", "conc": 1.0}, {"id": "B", "conc": 0.0}],
            parameters=[("k1", 2.0, True), ("k2", 0.5, True), ("A0", 2.0, True)],
            reactions=[("f", [("A", 1)], [("B", 1)], "k1 * A", {}), ("b", [("B", 1)], [("A", 1)], "c * k2 * B", {})],
            initial_assignments=[("A", "A0")],
        )
    )
    ts = jnp.array([0.5, 1.0, 2.0])
    problem = model.problem(saveat=ts)

    def loss(p):
        sol = pss.solve(
            problem, "Rodas5P", params=p, y0=model.initial_state(p), sensitivity="forward", rtol=1e-10, atol=1e-12
        )
        return jnp.sum(sol.ys[:, 1] ** 2)

    p = dict(problem.params)
    grad = jax.grad(loss)(p)
    for name in ("k1", "k2", "A0", "c"):
        h = 1e-5 * p[name]
        fd = (loss({**p, name: p[name] + h}) - loss({**p, name: p[name] - h})) / (2 * h)
        np.testing.assert_allclose(grad[name], fd, rtol=1e-6, err_msg=name)


def test_reverse_mode_gives_the_state_one_cotangent(layout):
    """The right-hand side's vector-Jacobian product is ``J^T w``. In the scalar layout the state is split once,
    so its cotangent is one concatenation: one slice per entry transposed to one zero-padded copy of the state per
    entry, which reverse mode then summed for every right-hand side evaluation of a step (Alkan_SciSignal2018's
    discrete-adjoint gradient runs 1.47x faster without them, benchmarks/README.md section 8). In the vectorised
    layout each level reads its arguments from the values with one gather (or slice), so reverse mode adds one
    cotangent to the values per level, not one zero-filled scatter-add per argument."""
    model = sbml.load(BOEHM)
    p = dict(model.defaults)
    y, w = jnp.linspace(0.5, 4.0, 8), jnp.linspace(-1.0, 1.0, 8)

    def vjp(y, w):
        return jax.vjp(lambda y: model.rhs(2.0, y, p), y)[1](w)[0]

    np.testing.assert_allclose(vjp(y, w), jax.jacfwd(model.rhs, argnums=1)(2.0, y, p).T @ w, rtol=1e-13)
    names = [eqn.primitive.name for eqn in equations(jax.make_jaxpr(vjp)(y, w).jaxpr)]
    if layout == "scalar":
        assert "pad" not in names and names.count("concatenate") == 1, sorted(set(names))
    else:
        plans = [plan for program in model._programs.values() for plan in program._plans.values()]
        forward = [eqn.primitive.name for eqn in equations(jax.make_jaxpr(lambda y: model.rhs(2.0, y, p))(y).jaxpr)]
        reads = forward.count("gather") + forward.count("slice")
        assert reads == sum(len(plan.levels) for plan in plans) + len(plans)  # and one read of each plan's outputs
        assert "pad" not in names and names.count("add_any") < reads, sorted(set(names))


def test_a_compiled_program_reads_the_parameter_vector_at_once(layout):
    """In a compiled program a problem's scalar parameters are one vector. The vectorised layout reads its inputs from
    it with one gather (``Model.rhs_of_vector``), where unravelling the vector into a dict cost one reshape per
    parameter and right-hand side call (Smith_BMCSystBiol2013's gradient program: 237 000 -> 107 000 operations,
    benchmarks/README.md section 8); the scalar layout keeps the dict. Same values and derivatives either way."""
    model = sbml.load(BOEHM)
    problem = model.problem(tspan=(0.0, 2.0))
    leaves, structure = problem.parameters()
    flat, theta, unravel = pss.programs.Spec(problem.rhs, structure, pss.solvers.get("Rodas5P")).flat(
        leaves, 0.0, problem.saveat)
    by_dict = pss.problem.with_params(problem.rhs, lambda th: structure.merge(unravel(th)))
    y = problem.y0 + 0.1
    np.testing.assert_allclose(flat.rhs(2.0, y, theta), model.rhs(2.0, y, problem.params), rtol=1e-14)
    for f in (jax.jacfwd, jax.jacrev):
        for got, want in zip(f(flat.rhs, argnums=(1, 2))(2.0, y, theta), f(by_dict, argnums=(1, 2))(2.0, y, theta)):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
    names = [eqn.primitive.name for eqn in jax.make_jaxpr(flat.rhs)(2.0, y, theta).jaxpr.eqns]
    assert ("reshape" in names) == (layout == "scalar"), sorted(set(names))
    if layout == "vectorised":
        with pytest.raises(ValueError, match=r"the parameters \['k_phos'\], which the right-hand side reads, are not"):
            model.rhs_of_vector([name for name in structure.scalar_names if name != "k_phos"])
    else:
        assert model.rhs_of_vector(structure.scalar_names) is None


def test_rhs_works_under_jit_and_vmap():
    model = sbml.load(BOEHM)
    p = dict(model.defaults)
    ys = jnp.stack([model.initial_state(p), jnp.linspace(0.0, 1.0, len(model.state_ids))])
    batched = jax.jit(jax.vmap(model.rhs, in_axes=(None, 0, None)))(2.0, ys, p)
    np.testing.assert_allclose(batched[1], model.rhs(2.0, ys[1], p), rtol=1e-14)


def test_boehm_benchmark_model_loads_and_its_rhs_matches_a_hand_check():
    model = sbml.load(BOEHM)
    assert model.source == str(BOEHM)
    assert model.state_ids == ("STAT5A", "STAT5B", "pApB", "pApA", "pBpB", "nucpApA", "nucpApB", "nucpBpB")
    assert "BaF3_Epo" not in model.parameter_ids and {"cyt", "nuc", "ratio", "k_phos"} <= set(model.parameter_ids)
    p = dict(model.defaults)
    y0 = model.initial_state(p)
    np.testing.assert_allclose(y0[:2], [207.6 * p["ratio"], 207.6 - 207.6 * p["ratio"]], rtol=1e-15)
    t = 3.0
    y = jnp.linspace(0.5, 4.0, 8)
    a, b, papa, napa, napb = y[0], y[1], y[3], y[5], y[6]
    epo = 1.25e-7 * math.exp(-p["Epo_degradation_BaF3"] * t)  # the assignment rule for BaF3_Epo
    v0 = p["cyt"] * epo * a**2 * p["k_phos"]  # 2 STAT5A -> pApA
    v1 = p["cyt"] * epo * a * b * p["k_phos"]  # STAT5A + STAT5B -> pApB
    v3 = p["cyt"] * p["k_imp_homo"] * papa  # pApA -> nucpApA (cytoplasm to nucleus)
    v6 = p["nuc"] * p["k_exp_homo"] * napa  # nucpApA -> 2 STAT5A
    v7 = p["nuc"] * p["k_exp_hetero"] * napb  # nucpApB -> STAT5A + STAT5B
    dy = model.rhs(t, y, p)
    np.testing.assert_allclose(dy[0], (-2 * v0 - v1 + 2 * v6 + v7) / p["cyt"], rtol=1e-13)
    np.testing.assert_allclose(dy[5], (v3 - v6) / p["nuc"], rtol=1e-13)
    obs = model.compile("scale * (2 * pApA + pApB) / (2 * pApA + pApB + STAT5A)", extra=["scale"])
    np.testing.assert_allclose(
        obs(t, y, p, {"scale": 2.0}), 2.0 * (2 * papa + y[2]) / (2 * papa + y[2] + a), rtol=1e-14
    )
