"""PEtab v1 problems (pystiffsens.petab): likelihood, mapping, preequilibration, events, refusals.

Small PEtab problems on a hand-written SBML chain ``0 -> A -> B -> 0`` (closed-form solution)
cover each supported feature; the Boehm benchmark problem checks a real model against AMICI's
reference log-likelihood (tests/data/petab/references.yaml). ``petab.v1.calculate_llh`` on the
simulations of our pipeline checks the likelihood formulas independently of the solver.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.extend
import jax.numpy as jnp
import libsbml
import numpy as np
import pandas as pd
import petab.v1 as petab
import pytest
import yaml

import pystiffsens as pss
from pystiffsens import memory
from pystiffsens import petab as pss_petab
from pystiffsens.petab.likelihood import negative_log_likelihood

DATA = Path(__file__).parent / "data" / "petab"
TOL = dict(rtol=1e-8, atol=1e-10)


# -- a tiny SBML model and PEtab tables written in the test ------------------------------------
def chain_sbml(event_trigger: str | None = None, source_species: bool = False) -> str:
    """``0 -(k_in)-> A -(k1 A)-> B -(k2 B)-> 0`` in compartment c; A given as amount 2 (so A0 = 2 / c).

    With ``event_trigger`` (e.g. ``"time >= te"``), the event ``pulse``: ``A = A + 1``. With
    ``source_species``, the inflow is ``k_in * S`` for a constant boundary species ``S`` (1.0).
    """
    doc = libsbml.SBMLDocument(3, 2)
    model = doc.createModel()
    model.setId("chain")
    comp = model.createCompartment()
    comp.setId("c"), comp.setSize(1.0), comp.setConstant(True), comp.setSpatialDimensions(3)
    for sid, kind, value in (("A", "amount", 2.0), ("B", "concentration", 0.5)):
        sp = model.createSpecies()
        sp.setId(sid), sp.setCompartment("c"), sp.setHasOnlySubstanceUnits(False)
        sp.setBoundaryCondition(False), sp.setConstant(False)
        sp.setInitialAmount(value) if kind == "amount" else sp.setInitialConcentration(value)
    for pid, value in (("k_in", 0.0), ("k1", 0.5), ("k2", 0.2), ("sig_model", 0.25), ("te", 2.0)):
        par = model.createParameter()
        par.setId(pid), par.setValue(value), par.setConstant(True)
    if source_species:
        sp = model.createSpecies()
        sp.setId("S"), sp.setCompartment("c"), sp.setHasOnlySubstanceUnits(False), sp.setInitialConcentration(1.0)
        sp.setBoundaryCondition(True), sp.setConstant(True)
    inflow = "c * k_in * S" if source_species else "c * k_in"
    for rid, reactant, product, law in (("r0", None, "A", inflow), ("r1", "A", "B", "c * k1 * A"),
                                        ("r2", "B", None, "c * k2 * B")):
        rxn = model.createReaction()
        rxn.setId(rid), rxn.setReversible(False)
        if reactant:
            ref = rxn.createReactant()
            ref.setSpecies(reactant), ref.setStoichiometry(1.0), ref.setConstant(True)
        if product:
            ref = rxn.createProduct()
            ref.setSpecies(product), ref.setStoichiometry(1.0), ref.setConstant(True)
        rxn.createKineticLaw().setMath(libsbml.parseL3Formula(law))
    if event_trigger:
        event = model.createEvent()
        event.setId("pulse"), event.setUseValuesFromTriggerTime(True)
        trigger = event.createTrigger()
        trigger.setMath(libsbml.parseL3Formula(event_trigger))
        trigger.setInitialValue(True), trigger.setPersistent(True)
        assignment = event.createEventAssignment()
        assignment.setVariable("A"), assignment.setMath(libsbml.parseL3Formula("A + 1"))
    return libsbml.writeSBMLToString(doc)


def write_problem(directory: Path, *, parameters, observables, conditions, measurements, sbml: str,
                  config_changes=None) -> Path:
    """A PEtab v1 problem directory from row lists; returns the yaml path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.xml").write_text(sbml)
    frames = {"parameters.tsv": parameters, "observables.tsv": observables, "conditions.tsv": conditions,
              "measurements.tsv": measurements}
    for name, rows in frames.items():
        pd.DataFrame(rows).to_csv(directory / name, sep="\t", index=False)
    config = {"format_version": 1, "parameter_file": "parameters.tsv",
              "problems": [{"sbml_files": ["model.xml"], "condition_files": ["conditions.tsv"],
                            "measurement_files": ["measurements.tsv"], "observable_files": ["observables.tsv"]}]}
    for key, value in (config_changes or {}).items():
        (config if key in ("format_version", "extensions") else config["problems"][0])[key] = value
    path = directory / "problem.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def par(pid, scale, nominal, estimate=1, **extra):
    return {"parameterId": pid, "parameterScale": scale, "lowerBound": 1e-5, "upperBound": 1e5,
            "nominalValue": nominal, "estimate": estimate, **extra}


def obs(oid, formula, noise, transformation="lin", distribution="normal"):
    return {"observableId": oid, "observableFormula": formula, "noiseFormula": noise,
            "observableTransformation": transformation, "noiseDistribution": distribution}


def meas(oid, cond, time, value, obs_pars="", noise_pars="", pre=""):
    return {"observableId": oid, "preequilibrationConditionId": pre, "simulationConditionId": cond,
            "time": time, "measurement": value, "observableParameters": obs_pars, "noiseParameters": noise_pars}


def chain_solution(t, A0, B0, k1, k2):
    """Closed-form A, B of the chain with k_in = 0."""
    A = A0 * np.exp(-k1 * t)
    B = B0 * np.exp(-k2 * t) + A0 * k1 / (k2 - k1) * (np.exp(-k1 * t) - np.exp(-k2 * t))
    return A, B


TIMES = (0.0, 0.5, 1.0, 2.0, 4.0)
FEATURE_PARAMETERS = [
    par("k1_a", "log10", 0.5), par("k2", "log", 0.2), par("scale_obs", "lin", 2.0), par("sd_A", "log10", 0.1),
    par("offset", "lin", 0.05, estimate=0), par("b_lap", "log", 0.3), par("B_init", "lin", 3.0, estimate=0),
]
FEATURE_OBSERVABLES = [
    obs("obs_A", "observableParameter1_obs_A * A + observableParameter2_obs_A", "noiseParameter1_obs_A"),
    obs("obs_B", "scale_obs * B", "b_lap", "log", "laplace"),
    obs("obs_AB", "A + B", "noiseParameter1_obs_AB + 0.1 * obs_AB", "log10", "normal"),
    obs("obs_Alap", "A", "noiseParameter1_obs_Alap", "lin", "laplace"),
]
# Condition c1 sets k1 by an estimated parameter id and B numerically; c2 sets k1 numerically, the
# compartment size (so A0 = 2 / c = 1) and B by a fixed parameter id.
FEATURE_CONDITIONS = [{"conditionId": "c1", "k1": "k1_a", "c": 1.0, "B": 0.7},
                      {"conditionId": "c2", "k1": 0.8, "c": 2.0, "B": "B_init"}]
FEATURE_INPUTS = {"c1": dict(A0=2.0, B0=0.7, k1=0.5, obs_A=(2.0, 0.05), sd_A=0.1),
                  "c2": dict(A0=1.0, B0=3.0, k1=0.8, obs_A=(1.5, 0.0), sd_A=0.2)}


def feature_measurements():
    rows = []
    for i, t in enumerate(TIMES):
        wobble = 1.0 + 0.1 * (-1) ** i
        for cond in ("c1", "c2"):
            inp = FEATURE_INPUTS[cond]
            A, B = chain_solution(t, inp["A0"], inp["B0"], inp["k1"], 0.2)
            obs_pars = "scale_obs;offset" if cond == "c1" else "1.5;0"
            rows.append(meas("obs_A", cond, t, wobble * (2.0 * A + 0.05), obs_pars, "sd_A" if cond == "c1" else 0.2))
            rows.append(meas("obs_B", cond, t, wobble * 2.0 * B))
            rows.append(meas("obs_AB", cond, t, wobble * (A + B), "", 0.05))
            rows.append(meas("obs_Alap", cond, t, A + 0.1 * wobble, "", "sig_model"))
    return rows


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    path = write_problem(tmp_path_factory.mktemp("features"), parameters=FEATURE_PARAMETERS,
                         observables=FEATURE_OBSERVABLES, conditions=FEATURE_CONDITIONS,
                         measurements=feature_measurements(), sbml=chain_sbml())
    return pss_petab.load(path)


def expected_features(frame):
    """Observable values and noise parameters of the feature problem from the closed form, by hand."""
    sims, sigmas = [], []
    for row in frame.itertuples():
        inp = FEATURE_INPUTS[row.simulationConditionId]
        A, B = chain_solution(row.time, inp["A0"], inp["B0"], inp["k1"], 0.2)
        value, sigma = {
            "obs_A": (inp["obs_A"][0] * A + inp["obs_A"][1], inp["sd_A"]),
            "obs_B": (2.0 * B, 0.3),
            "obs_AB": (A + B, 0.05 + 0.1 * (A + B)),
            "obs_Alap": (A, 0.25),
        }[row.observableId]
        sims.append(value), sigmas.append(sigma)
    return np.array(sims), np.array(sigmas)


# -- the likelihood formulas --------------------------------------------------------------------
@pytest.mark.parametrize("transformation", ["lin", "log", "log10"])
@pytest.mark.parametrize("distribution", ["normal", "laplace"])
def test_noise_model_matches_petab(transformation, distribution):
    """Each noise model and transformation against petab.v1.calculate.calculate_single_llh."""
    for m, y, sigma in ((1.3, 0.9, 0.2), (0.05, 0.07, 1.5), (20.0, 25.0, 0.01)):
        ours = float(negative_log_likelihood(m, y, sigma, transformation, distribution))
        theirs = -petab.calculate_single_llh(m, y, transformation, distribution, sigma)
        assert ours == pytest.approx(theirs, rel=1e-13, abs=1e-13)


def test_noise_model_refuses_unknown_names():
    with pytest.raises(ValueError, match=r"noiseDistribution='cauchy' is not one of \['normal', 'laplace'\]"):
        negative_log_likelihood(1.0, 1.0, 1.0, "lin", "cauchy")
    with pytest.raises(ValueError, match=r"observableTransformation='sqrt' is not one of"):
        negative_log_likelihood(1.0, 1.0, 1.0, "sqrt", "normal")


# -- the feature problem: overrides, transformations, Laplace, scales, compartments ----------
def test_features_nominal_and_mapping(features):
    """Nominal values on their scales; two conditions of one structure run as one batch."""
    assert features.estimated == ("k1_a", "k2", "scale_obs", "sd_A", "b_lap")
    assert features.nominal == pytest.approx({"k1_a": math.log10(0.5), "k2": math.log(0.2), "scale_obs": 2.0,
                                              "sd_A": -1.0, "b_lap": math.log(0.3)}, rel=1e-15)
    assert len(features._batches) == 1 and len(features._batches[0].simulations) == 2


def test_features_simulations_match_closed_form(features):
    """Condition overrides (numbers, ids, species, compartment) and measurement overrides, by hand."""
    frame = features.simulations(**TOL)
    sims, sigmas = expected_features(frame)
    np.testing.assert_allclose(frame["simulation"], sims, rtol=1e-6)
    np.testing.assert_allclose(frame["sigma"], sigmas, rtol=1e-6)


def test_features_nllh_matches_petab_calculate_llh(features):
    """PEtab's calculate_llh on our simulations equals our nllh (the formulas, not the solver)."""
    problem = features.table.petab_problem
    frame = features.simulations(**TOL)
    # calculate_llh looks override ids up in the parameter table only; sig_model is a model parameter.
    parameter_df = pd.concat([problem.parameter_df, pd.DataFrame(
        [{"parameterScale": "lin", "nominalValue": 0.25, "estimate": 0}], index=pd.Index(["sig_model"],
                                                                                          name="parameterId"))])
    llh = petab.calculate_llh(problem.measurement_df, frame.drop(columns=["sigma"]), problem.observable_df,
                              parameter_df)
    assert features.nllh(**TOL) == pytest.approx(-llh, rel=1e-12)


def test_measurements_read_only_the_inputs_their_formulas_use(features):
    """Each observable's measurements take only the model inputs that its formulas read (through rules too) and its
    placeholders name, not every input: gathering them all traced hundreds of gathers per observable on a model of
    many parameters (Lang_PLOSComputBiol2024: 14.5 s of its gradient's first call, profiled)."""
    simulate = features._simulations_fn(pss.solvers.get("Rodas5P"), None, 1e-6, 1e-8, 10_000)
    ys, ts, p, theta, *_ = simulate(features._vector(None))
    measurements = features._measurements
    jaxpr = jax.make_jaxpr(lambda p: measurements.evaluate(ys, ts, p, theta))(p).jaxpr
    used = {var for eqn in jaxpr.eqns for var in eqn.invars if isinstance(var, jax.extend.core.Var)}
    read = {name for name, var in zip(sorted(p), jaxpr.invars) if var in used}
    expected = set()
    for cobs, _, sources, _ in measurements.groups:
        expected |= set(cobs.value.inputs(p)) | set(cobs.sigma.inputs(p))
        expected |= {src for column in sources.values() for src in column if isinstance(src, str) and src in p}
    assert read == expected and len(read) < len(p), (sorted(read), sorted(p))


def test_features_gradient_matches_central_differences(features):
    """jax.grad through pss.solve, forward and adjoint, against central differences on the scales."""
    x = {**features.nominal, "k2": features.nominal["k2"] + 0.1}
    h = 1e-5
    fd = {}
    for pid in features.estimated:
        up, down = dict(x), dict(x)
        up[pid] += h
        down[pid] -= h
        fd[pid] = (features.nllh(up, **TOL) - features.nllh(down, **TOL)) / (2 * h)
    for sensitivity in ("forward", "InterpolatingAdjoint"):
        grad = features.gradient(x, sensitivity=sensitivity, **TOL)
        for pid in features.estimated:
            assert grad[pid] == pytest.approx(fd[pid], rel=1e-5, abs=1e-6), (sensitivity, pid)


def test_vectorised_layout_gives_the_same_likelihood_and_gradient(features):
    """The features problem in the vectorised SBML layout: the nllh and its gradient of the scalar layout."""
    assert features.model.layout == "scalar"  # a small model: the automatic choice
    vectorised = pss_petab.load(features.table.yaml_path, layout="vectorised")
    assert vectorised.model.layout == "vectorised"
    x = {**features.nominal, "k2": features.nominal["k2"] + 0.1}
    assert vectorised.nllh(x, **TOL) == pytest.approx(features.nllh(x, **TOL), rel=1e-12)
    grad, expected = (f.gradient(x, sensitivity="forward", **TOL) for f in (vectorised, features))
    assert grad == pytest.approx(expected, rel=1e-9)


def test_features_programs_are_traced_once(features, monkeypatch):
    """Repeated nllh/gradient calls at new x reuse the compiled program (no tracing)."""
    traces = []
    theta = features._theta
    monkeypatch.setattr(features, "_theta", lambda x: traces.append(1) or theta(x))
    options = dict(rtol=1e-7, atol=1e-9)  # tolerances of their own: a program not compiled before
    values = [features.nllh({"k2": v}, **options) for v in (-1.5, -1.6, -1.7)]
    assert len(traces) == 1 and len(set(values)) == 3
    features.gradient({"k2": -1.5}, sensitivity="forward", **options)
    features.gradient({"k2": -1.6}, sensitivity="forward", **options)
    assert len(traces) == 2


def test_a_failed_backward_solve_is_a_failure_not_a_silent_nan(features, monkeypatch):
    """Every simulation succeeds, but the continuous adjoint's backward solve fails (made to here): the evaluation
    says so, keeps the nllh and makes every gradient entry NaN. Before, the status was Success beside NaN entries
    (FBDF with InterpolatingAdjoint on Zheng_PNAS2012, whose backward solve stopped with DtLessThanMin)."""
    backward = pss.sensitivity.InterpolatingAdjoint.backward

    def failing(self, *args, **kwargs):
        return backward(self, *args, **kwargs)._replace(status=jnp.asarray(int(pss.ReturnCode.DtLessThanMin)))

    monkeypatch.setattr(pss.sensitivity.InterpolatingAdjoint, "backward", failing)
    options = dict(rtol=2e-8, atol=1e-10)  # tolerances of their own: a program not compiled before
    result = features.evaluate(gradient=True, sensitivity="InterpolatingAdjoint", **options)
    assert result.status == pss.ReturnCode.Failure and result.failed == {pss_petab.problem.BACKWARD_PASS:
                                                                          pss.ReturnCode.Failure}
    assert result.nllh == pytest.approx(features.nllh(**options), rel=1e-12)
    assert all(math.isnan(g) for g in result.gradient.values())


def test_gradient_programs_hold_short_step_records_and_rerun_when_a_solve_fills_them(features, monkeypatch):
    """A gradient program holds one short length of step records, not also a checkpointed ``max_steps`` one; when a
    solve fills them, the program whose records follow the solve gives the gradient, then runs alone for those
    settings, as it does at once when the last call's solves took more steps. Compiling both lengths at once took
    Alkan_SciSignal2018's first gradient call 91 s instead of 57."""
    runs = []
    program = features._program
    monkeypatch.setattr(features, "_program", lambda *args: runs.append((args[0], *args[6:])) or program(*args))
    x = {**features.nominal, "k2": features.nominal["k2"] + 0.1}
    options = dict(sensitivity="ReverseDiffAdjoint", rtol=1e-11, atol=1e-13)  # tight: more than 16 steps
    expected = features.gradient(x, **options)
    assert runs == [("gradient", memory.aligned(memory.INITIAL_SAVED_STEPS))]

    monkeypatch.setattr(memory, "INITIAL_SAVED_STEPS", 4)  # records of 16 steps: fewer than the solves take
    runs.clear()
    evaluation = features.evaluate(x, gradient=True, **options, max_steps=50_000)  # a program of its own
    assert evaluation.success and evaluation.gradient == pytest.approx(expected, rel=1e-10)
    assert runs == [("gradient", 16), ("gradient",)]  # the short records filled (MaxIters): the longer ones
    runs.clear()
    features.gradient(x, **options, max_steps=50_000)
    assert runs == [("gradient",)]
    features._long_records.clear(), features._steps.clear()  # as if no call had run: the likelihood's steps tell
    runs.clear()
    features.nllh(x, rtol=1e-11, atol=1e-13, max_steps=50_000)  # its solves take more than 16 steps
    assert features.gradient(x, **options, max_steps=50_000) == pytest.approx(expected, rel=1e-10)
    assert runs == [("nllh",), ("gradient",)]


def test_features_problem_is_a_plain_problem(features):
    """problem(condition) is a pss.Problem whose losses add up to the nllh, with a stiffness knob."""
    total = 0.0
    for cond in ("c1", "c2"):
        problem = features.problem(cond, stiffness="k2")
        assert isinstance(problem, pss.Problem) and problem.stiffness == "k2"
        assert problem.params["k1"] == pytest.approx(FEATURE_INPUTS[cond]["k1"])
        sol = pss.solve(problem, "Rodas5P", **TOL)
        total += float(problem.loss(sol.ts, jnp.asarray(sol.ys), problem.params))
    assert total == pytest.approx(features.nllh(**TOL), rel=1e-10)
    with pytest.raises(ValueError, match=r"has 2 simulation conditions; give condition_id, one of \['c1', 'c2'\]"):
        features.problem()
    with pytest.raises(ValueError, match=r"condition_id='c3' is not a simulation condition"):
        features.problem("c3")
    frame = pss.sweep(features.problem("c1", stiffness="k2"), [0.2, 2.0], "Rodas5P", "forward", progress=False)
    assert set(frame["status"]) == {"Success"} and np.isfinite(frame["grad"]).all()


def test_priors_are_kept_but_are_not_part_of_the_likelihood(tmp_path):
    flat = pss_petab.load(small_problem(tmp_path / "flat"))
    with_prior = pss_petab.load(small_problem(tmp_path / "prior", parameters=[
        par("k1", "lin", 0.5, objectivePriorType="normal", objectivePriorParameters="0.5;0.1"),
        par("sd", "lin", 0.1, estimate=0)]))
    assert with_prior.priors == {"k1": ("normal", "0.5;0.1")} and flat.priors == {}
    assert with_prior.nllh(**TOL) == flat.nllh(**TOL)


def test_a_condition_that_sets_a_constant_species(tmp_path):
    """A condition column naming a constant species sets it (through p), in the simulation and the preequilibration."""
    def nllh(directory, inflow, pre):
        path = write_problem(
            tmp_path / directory, sbml=chain_sbml(source_species=True),
            parameters=[par("k1", "lin", 0.5), par("sd", "lin", 0.1, estimate=0)],
            observables=[obs("obs_A", "A", "sd")], conditions=[{"conditionId": "main", "k_in": 1.0, **inflow}],
            measurements=[meas("obs_A", "main", 1.0, 1.0, pre="main" if pre else "")])
        return pss_petab.load(path).nllh(**TOL)

    for pre in (False, True):
        twice = nllh(f"S{pre}", {"S": 2.0}, pre)
        assert twice == pytest.approx(nllh(f"k{pre}", {"k_in": 2.0}, pre), rel=1e-9)
        assert twice != pytest.approx(nllh(f"plain{pre}", {}, pre), rel=1e-3)


def test_visualization_files_are_not_read(tmp_path):
    """A problem whose visualization file is missing still loads: plots do not enter the likelihood."""
    path = small_problem(tmp_path, config_changes={"visualization_files": ["missing_visualization.tsv"]})
    assert math.isfinite(pss_petab.load(path).nllh(**TOL))


def test_x_is_checked(features):
    with pytest.raises(ValueError, match=r"x has \['k1'\], which are not estimated parameters .* valid ids: "
                                         r"\['k1_a', 'k2', 'scale_obs', 'sd_A', 'b_lap'\]"):
        features.nllh({"k1": 0.0})


# -- preequilibration -------------------------------------------------------------------------
def test_preequilibration(tmp_path):
    """The steady state of the preequilibration condition, then the condition's own overrides."""
    path = write_problem(
        tmp_path, sbml=chain_sbml(),
        parameters=[par("k1", "log10", 0.5), par("k2", "lin", 0.3), par("sd", "lin", 0.1, estimate=0)],
        observables=[obs("obs_A", "A", "sd"), obs("obs_B", "B", "sd")],
        # pre: inflow on, B from the file; main: inflow off, A kept (NaN) from the steady state, B set.
        conditions=[{"conditionId": "pre", "k_in": 1.0, "B": float("nan")},
                    {"conditionId": "main", "k_in": 0.0, "B": 5.0}],
        measurements=[meas(o, "main", t, 1.0, pre="pre") for o in ("obs_A", "obs_B") for t in TIMES],
    )
    problem = pss_petab.load(path)
    frame = problem.simulations(**TOL)
    A, B = chain_solution(frame["time"].to_numpy(), 1.0 / 0.5, 5.0, 0.5, 0.3)  # steady A = k_in / k1
    np.testing.assert_allclose(frame["simulation"], np.where(frame["observableId"] == "obs_A", A, B), rtol=1e-6)
    grad = problem.gradient(sensitivity="forward", **TOL)
    h = 1e-5
    fd = (problem.nllh({"k1": problem.nominal["k1"] + h}, **TOL)
          - problem.nllh({"k1": problem.nominal["k1"] - h}, **TOL)) / (2 * h)
    assert grad["k1"] == pytest.approx(fd, rel=1e-5)
    assert problem.problem("main").y0 == pytest.approx([2.0, 5.0], rel=1e-7)


def test_preequilibration_that_does_not_settle_fails_with_nan(tmp_path):
    """With k1 = 0 the inflow makes A grow linearly: no steady state within the horizon, so NaN and Failure."""
    path = write_problem(
        tmp_path, sbml=chain_sbml(),
        parameters=[par("k2", "lin", 0.3), par("sd", "lin", 0.1, estimate=0)],
        observables=[obs("obs_B", "B", "sd")],
        conditions=[{"conditionId": "pre", "k_in": 1.0, "k1": 0.0}, {"conditionId": "main", "k_in": 0.0, "k1": 0.5}],
        measurements=[meas("obs_B", "main", 1.0, 1.0, pre="pre")],
    )
    problem = pss_petab.load(path, preequilibration_horizon=100.0)
    assert math.isnan(problem.nllh(**TOL))
    result = problem.evaluate(gradient=True, sensitivity="forward", **TOL)
    assert result.status == pss.ReturnCode.Failure and not result.success
    assert result.failed == {"pre:main": pss.ReturnCode.Failure}
    assert math.isnan(result.nllh) and all(math.isnan(g) for g in result.gradient.values())


def inflow_solution(t, k_in, k1, k2, A0=2.0, B0=0.5):
    """Closed-form A, B of the chain with inflow ``k_in`` (c = 1); at ``t = inf`` the steady state ``k_in / k1``,
    ``k_in / k2``."""
    A_ss, B_ss = k_in / k1, k_in / k2
    a = A0 - A_ss
    decay1, decay2 = np.exp(-k1 * t), np.exp(-k2 * t)
    return A_ss + a * decay1, B_ss + a * k1 / (k2 - k1) * decay1 + (B0 - B_ss - a * k1 / (k2 - k1)) * decay2


def steady_state_problem(tmp_path, *, horizon=None, k1_off=0.5):
    """Condition "on" (inflow 1) is measured at t = 0.5, 1 and at steady state; "ss" (inflow 2) at steady state
    only; both with A and B observed. ``k1_off``: k1 of a third condition "off", measured at steady state only."""
    path = write_problem(
        tmp_path, sbml=chain_sbml(),
        parameters=[par("k1", "log10", 0.5), par("k2", "lin", 0.3), par("sd", "lin", 0.1, estimate=0)],
        observables=[obs("obs_A", "A", "sd"), obs("obs_B", "B", "sd")],
        conditions=[{"conditionId": "on", "k_in": 1.0, "k1": "k1"}, {"conditionId": "ss", "k_in": 2.0, "k1": "k1"},
                    {"conditionId": "off", "k_in": 1.0, "k1": k1_off}],
        measurements=[meas(o, "on", t, value) for o in ("obs_A", "obs_B") for t, value in ((0.5, 1.5), (1.0, 1.0),
                                                                                            (math.inf, 2.5))]
        + [meas(o, c, math.inf, 3.0) for o in ("obs_A", "obs_B") for c in ("ss", "off")],
    )
    return pss_petab.load(path) if horizon is None else pss_petab.load(path, preequilibration_horizon=horizon)


def test_steady_state_measurements(tmp_path):
    """time inf: the steady state of the simulation condition, reached from its last finite measurement time."""
    problem = steady_state_problem(tmp_path)
    assert [batch.times.tolist() for batch in problem._batches] == [[0.5, 1.0, math.inf]]  # one batch of three
    frame = problem.simulations(**TOL)
    k_in = frame["simulationConditionId"].map({"on": 1.0, "ss": 2.0, "off": 1.0}).to_numpy()
    A, B = inflow_solution(frame["time"].to_numpy(), k_in, 0.5, 0.3)
    np.testing.assert_allclose(frame["simulation"], np.where(frame["observableId"] == "obs_A", A, B), rtol=1e-7)
    tables = problem.table.petab_problem
    llh = petab.calculate_llh(tables.measurement_df, frame.drop(columns=["sigma"]), tables.observable_df,
                              tables.parameter_df)
    assert problem.nllh(**TOL) == pytest.approx(-llh, rel=1e-12)
    h = 1e-5
    fd = {pid: (problem.nllh({pid: problem.nominal[pid] + h}, **TOL)
                - problem.nllh({pid: problem.nominal[pid] - h}, **TOL)) / (2 * h) for pid in problem.estimated}
    for sensitivity in ("ForwardDiffSensitivity", "InterpolatingAdjoint"):  # the discrete map, a continuous adjoint
        assert problem.gradient(sensitivity=sensitivity, **TOL) == pytest.approx(fd, rel=1e-5), sensitivity
    with pytest.raises(ValueError, match=r"condition 'on' of .* has steady-state measurements \(time inf\)"):
        problem.problem("on")


def test_a_steady_state_that_is_not_reached_fails_with_nan(tmp_path):
    """With k1 = 0 in condition "off" the inflow makes A grow linearly: its postequilibration fails, the rest runs."""
    problem = steady_state_problem(tmp_path, horizon=100.0, k1_off=0.0)
    result = problem.evaluate(gradient=True, sensitivity="forward", **TOL)
    assert result.status == pss.ReturnCode.Failure and result.failed == {"off": pss.ReturnCode.Failure}
    assert math.isnan(result.nllh) and all(math.isnan(g) for g in result.gradient.values())


def test_failed_solve_gives_its_status_and_nan(features):
    """A solve that runs out of steps: MaxIters for the simulations it ends, NaN nllh and gradient."""
    result = features.evaluate(gradient=True, sensitivity="forward", max_steps=3, **TOL)
    assert result.status == pss.ReturnCode.MaxIters
    assert set(result.failed) == set(features.conditions) and set(result.failed.values()) == {pss.ReturnCode.MaxIters}
    assert math.isnan(result.nllh) and all(math.isnan(g) for g in result.gradient.values())
    good = features.evaluate(**TOL)
    assert good.success and good.failed == {} and good.gradient is None and good.nllh == features.nllh(**TOL)


# -- events -----------------------------------------------------------------------------------
def event_problem(tmp_path, *, estimated_te=False, pre="", trigger="time >= te"):
    parameters = [par("k1", "lin", 0.5), par("sd", "lin", 0.1, estimate=0)]
    if estimated_te:
        parameters.append(par("te", "lin", 2.0))
    conditions = [{"conditionId": "main", "k_in": 0.0}, {"conditionId": "pre", "k_in": 1.0}]
    return write_problem(
        tmp_path, sbml=chain_sbml(event_trigger=trigger), parameters=parameters,
        observables=[obs("obs_A", "A", "sd"), obs("obs_B", "B", "sd")], conditions=conditions,
        measurements=[meas(o, "main", t, 1.0, pre=pre) for o in ("obs_A", "obs_B") for t in (0.0, 1.0, 2.0, 3.0)],
    )


def test_time_event_splits_the_solve(tmp_path):
    """A = A + 1 at t = 2: the measurement at t = 2 sees the state after the event."""
    problem = pss_petab.load(event_problem(tmp_path))
    frame = problem.simulations(**TOL)
    t = frame["time"].to_numpy()
    A_before, B_before = chain_solution(np.minimum(t, 2.0), 2.0, 0.5, 0.5, 0.2)
    A_after, B_after = chain_solution(t - 2.0, A_before + 1.0, B_before, 0.5, 0.2)
    A, B = np.where(t < 2.0, A_before, A_after), np.where(t < 2.0, B_before, B_after)
    np.testing.assert_allclose(frame["simulation"], np.where(frame["observableId"] == "obs_A", A, B), rtol=1e-6)
    with pytest.raises(ValueError, match=r"condition 'main' of problem has events at t = \[2.0\]"):
        problem.problem("main")


def test_a_steady_state_measurement_sees_the_events_after_the_last_finite_time(tmp_path):
    """A -> B with k2 = 0 conserves A + B; the pulse A = A + 1 at t = 2, after the last finite measurement (t = 1),
    still reaches the steady state A = 0, B = 2 + 0.5 + 1."""
    path = write_problem(
        tmp_path, sbml=chain_sbml(event_trigger="time >= te"), parameters=[par("k1", "lin", 0.5),
                                                                            par("sd", "lin", 0.1, estimate=0)],
        observables=[obs("obs_A", "A", "sd"), obs("obs_B", "B", "sd")],
        conditions=[{"conditionId": "main", "k_in": 0.0, "k2": 0.0}],
        measurements=[meas(o, "main", t, 1.0) for o in ("obs_A", "obs_B") for t in (1.0, math.inf)],
    )
    frame = pss_petab.load(path).simulations(**TOL)
    A, B = chain_solution(1.0, 2.0, 0.5, 0.5, 0.0)
    np.testing.assert_allclose(frame["simulation"], [A, 0.0, B, 3.5], rtol=1e-7, atol=1e-9)


def test_refused_event_constructs(tmp_path):
    with pytest.raises(ValueError, match=r"the time of event 'pulse' depending on estimated parameters is not "
                                         r"supported"):
        pss_petab.load(event_problem(tmp_path / "a", estimated_te=True))
    with pytest.raises(ValueError, match=r"events \(\['pulse'\]\) together with preequilibration"):
        pss_petab.load(event_problem(tmp_path / "b", pre="pre"))
    with pytest.raises(ValueError, match=r"pulse") as error:  # the SBML reader refuses a trigger on a state
        pss_petab.load(event_problem(tmp_path / "c", trigger="A < 0.5"))
    assert "model.xml" in str(error.value)


# -- switches in time (piecewise of time) ------------------------------------------------------
SWITCH_ON = {"early": 1.5, "late": 3.0}  # the late switch falls on a measurement time
INFLOW = 1e6  # the jump of A's inflow: no step across it, or of one ulp onto it, passes the error test at atol 1e-12


def switch_sbml() -> str:
    """The chain with the inflow ``u = L * piecewise(0, time - t_on < 0, 1)`` into A, an assignment rule."""
    doc = libsbml.readSBMLFromString(chain_sbml())
    model = doc.getModel()
    for pid, value, constant in (("L", INFLOW, True), ("t_on", 1.0, True), ("u", 0.0, False)):
        parameter = model.createParameter()
        parameter.setId(pid), parameter.setValue(value), parameter.setConstant(constant)
    rule = model.createAssignmentRule()
    rule.setVariable("u"), rule.setMath(libsbml.parseL3Formula("L * piecewise(0, time - t_on < 0, 1)"))
    model.getReaction("r0").getKineticLaw().setMath(libsbml.parseL3Formula("c * u"))
    return libsbml.writeSBMLToString(doc)


def switch_A(t, t_on, k1):
    """A of the chain with the switched inflow: its decay from 2, plus the inflow's approach to L / k1 after t_on."""
    return 2.0 * jnp.exp(-k1 * t) + jnp.where(t > t_on, INFLOW / k1 * (1.0 - jnp.exp(-k1 * (t - t_on))), 0.0)


def switch_problem(directory, *, estimated_switch=False):
    """Conditions "early" and "late" switch the inflow on at SWITCH_ON; with ``estimated_switch`` the early one's
    time is the estimated parameter ``t_early``."""
    parameters = [par("k1", "log10", 0.5), par("sd", "lin", 1.0, estimate=0)]
    if estimated_switch:
        parameters.append(par("t_early", "lin", SWITCH_ON["early"]))
    conditions = [{"conditionId": "early", "t_on": "t_early" if estimated_switch else SWITCH_ON["early"]},
                  {"conditionId": "late", "t_on": SWITCH_ON["late"]}]
    measurements = [meas("obs_A", cond, t, float(switch_A(t, on, 0.5)) + 0.3 * (-1) ** i)
                    for cond, on in SWITCH_ON.items() for i, t in enumerate((0.0, 1.0, 2.0, 3.0, 4.0))]
    return write_problem(directory, sbml=switch_sbml(), parameters=parameters,
                         observables=[obs("obs_A", "A", "sd")], conditions=conditions, measurements=measurements)


def test_a_switch_in_time_is_stepped_over_at_tight_tolerances(tmp_path):
    """Each condition's solve stops around its own switch time (lanes of one batch) and gets over it at rtol 1e-10,
    where a step across it cannot pass the error test; likelihood and gradient match the closed form."""
    problem = pss_petab.load(switch_problem(tmp_path))
    frame = problem.table.petab_problem.measurement_df

    def nllh(x):
        k1 = 10.0 ** x
        residuals = [(m - switch_A(t, SWITCH_ON[cond], k1)) for cond, t, m in
                     zip(frame["simulationConditionId"], frame["time"], frame["measurement"])]
        return jnp.sum(0.5 * jnp.log(2 * jnp.pi) + 0.5 * jnp.stack(residuals) ** 2)

    x = problem.nominal["k1"]
    tight = dict(rtol=1e-10, atol=1e-12)
    evaluation = problem.evaluate(**tight)
    assert evaluation.status == pss.ReturnCode.Success, evaluation.failed
    assert evaluation.nllh == pytest.approx(float(nllh(x)), rel=1e-7)
    exact = float(jax.grad(nllh)(x))
    for sensitivity in ("ForwardDiffSensitivity", "InterpolatingAdjoint"):
        gradient = problem.gradient(sensitivity=sensitivity, **tight)
        assert gradient["k1"] == pytest.approx(exact, rel=1e-6), sensitivity
    assert problem.model.switches == ("t_on",)
    # One condition as a plain problem: its saveat has the stops too, and its loss is its share of the nllh.
    late = problem.problem("late")
    assert {np.nextafter(3.0, 0.0), 3.0, np.nextafter(3.0, 4.0)} <= set(late.saveat.tolist())
    sol = pss.solve(late, "Rodas5P", **tight)
    assert sol.status == pss.ReturnCode.Success, sol.status
    rows = frame["simulationConditionId"] == "late"
    share = 0.5 * np.log(2 * np.pi) * rows.sum() + 0.5 * np.sum(
        (frame["measurement"][rows] - np.asarray(switch_A(frame["time"][rows].to_numpy(), SWITCH_ON["late"], 0.5))) ** 2)
    assert float(late.loss(sol.ts, jnp.asarray(sol.ys), late.params)) == pytest.approx(share, rel=1e-7)


def test_a_steady_state_is_tested_at_the_end_of_its_solve(tmp_path):
    """The inflow switches on at t = 1.5: the steady state A = L / k1 holds for the right-hand side at the end of the
    postequilibration (from t = 0 here), not at its start, where the inflow is off."""
    path = write_problem(tmp_path, sbml=switch_sbml(), parameters=[par("k1", "lin", 0.5), par("sd", "lin", 1.0, 0)],
                         observables=[obs("obs_A", "A", "sd")], conditions=[{"conditionId": "on", "t_on": 1.5}],
                         measurements=[meas("obs_A", "on", math.inf, 1.0)])
    evaluation = pss_petab.load(path).evaluate(**TOL)
    assert evaluation.status == pss.ReturnCode.Success, evaluation.failed
    residual = 1.0 - INFLOW / 0.5
    assert evaluation.nllh == pytest.approx(0.5 * math.log(2 * math.pi) + 0.5 * residual**2, rel=1e-7)


def test_the_gradient_carries_a_switch_time_set_by_an_estimated_parameter(tmp_path):
    """t_on = t_early, estimated: moving the switch moves the inflow's start, whose effect on A is the jump term
    Phi (f_- - f_+) dT (sbml.switches.warped), which forward mode and the adjoints all carry."""
    problem = pss_petab.load(switch_problem(tmp_path, estimated_switch=True))
    frame = problem.table.petab_problem.measurement_df

    def nllh(x):
        k1, on = 10.0 ** x[0], {"early": x[1], "late": SWITCH_ON["late"]}
        residuals = [(m - switch_A(t, on[cond], k1)) for cond, t, m in
                     zip(frame["simulationConditionId"], frame["time"], frame["measurement"])]
        return jnp.sum(0.5 * jnp.log(2 * jnp.pi) + 0.5 * jnp.stack(residuals) ** 2)

    x = jnp.asarray([problem.nominal["k1"], problem.nominal["t_early"]])
    tight = dict(rtol=1e-10, atol=1e-12)
    assert problem.nllh(**tight) == pytest.approx(float(nllh(x)), rel=1e-7)
    exact = np.asarray(jax.grad(nllh)(x))
    for sensitivity in ("ForwardDiffSensitivity", "InterpolatingAdjoint"):  # the discrete map, a continuous adjoint
        gradient = problem.gradient(sensitivity=sensitivity, **tight)
        np.testing.assert_allclose([gradient["k1"], gradient["t_early"]], exact, rtol=1e-6, err_msg=sensitivity)
    assert abs(exact[1]) > 1e3  # the switch's own term: without it d nllh / d t_early would be 0
    # The condition as a plain problem, whose params hold the model's t_on: its gradient carries the move too.
    plain = pss.gradient(problem.problem("early"), "Rodas5P", "ForwardDiffSensitivity", **tight)
    assert plain.grad["t_on"] == pytest.approx(exact[1], rel=1e-6)


# -- refusals ---------------------------------------------------------------------------------
def small_problem(tmp_path, *, parameters=None, observables=None, conditions=None, measurements=None,
                  config_changes=None):
    return write_problem(
        tmp_path, sbml=chain_sbml(),
        parameters=parameters or [par("k1", "lin", 0.5), par("sd", "lin", 0.1, estimate=0)],
        observables=observables or [obs("obs_A", "A", "sd")],
        conditions=conditions or [{"conditionId": "main", "k_in": 0.0}],
        measurements=measurements or [meas("obs_A", "main", 1.0, 1.0)], config_changes=config_changes,
    )


@pytest.mark.parametrize("change, message", [
    (dict(measurements=[meas("obs_A", "main", -1.0, 1.0)]), r"a measurement at time -1.0 before the start t=0"),
    (dict(observables=[obs("obs_A", "A", "sd", transformation="sqrt")]),
     r"observableTransformation 'sqrt' of observable 'obs_A' is not supported .* Valid: \['lin', 'log', 'log10'\]"),
    (dict(observables=[obs("obs_A", "A", "sd", distribution="cauchy")]),
     r"noiseDistribution 'cauchy' of observable 'obs_A' is not supported .* Valid: \['normal', 'laplace'\]"),
    (dict(config_changes={"mapping_files": ["mapping.tsv"]}), r"a mapping table \(mapping_files\) is not supported"),
    (dict(config_changes={"format_version": 2}), r"format_version '2' is not supported"),
    (dict(config_changes={"extensions": {"sciml": {}}}), r"extensions \['sciml'\] is not supported"),
    (dict(config_changes={"sbml_files": ["model.xml", "model.xml"]}), r"2 SBML files is not supported"),
    (dict(conditions=[{"conditionId": "main", "nonsense": 1.0}]),
     r"condition table column 'nonsense' is not a parameter, compartment or species of the model"),
    (dict(conditions=[{"conditionId": "main", "k_in": float("nan")}]),
     r"an empty \(NaN\) value for parameter or compartment 'k_in' in condition 'main' is not supported"),
    (dict(measurements=[meas("obs_A", "main", 1.0, 1.0, obs_pars="2.0")]),
     r"observableParameters 2.0 gives 1 values, but the formula has 0 placeholders"),
    (dict(conditions=[{"conditionId": "main", "k_in": "unknown_id"}]),
     r"column 'k_in' names 'unknown_id', which is neither in the parameter table nor a model parameter"),
])
def test_refused_constructs_are_named(tmp_path, change, message):
    with pytest.raises(ValueError, match=message) as error:
        pss_petab.load(small_problem(tmp_path, **change))
    assert str(tmp_path) in str(error.value)  # the file is named


# -- benchmark models ------------------------------------------------------------------------
def test_benchmark_with_steady_state_measurements_matches_the_collections_simulations():
    """Blasi_CellSystems2016 measures only steady states (time inf). AMICI has no reference llh for it; the
    collection's simulations (simulatedData_*.tsv) are the reference: they matched ours to 2e-8 relative at rtol 1e-10,
    and their llh (petab.v1.calculate_llh) ours to 5e-9."""
    name = "Blasi_CellSystems2016"
    problem = pss_petab.load(DATA / name / f"{name}.yaml")
    reference = pd.read_csv(DATA / name / f"simulatedData_{name}.tsv", sep="\t")
    ours = problem.simulations(**TOL)
    key = ["observableId", "simulationConditionId", "time"]
    joined = ours.groupby(key)["simulation"].first().to_frame().join(
        reference.groupby(key)["simulation"].first().rename("reference"), how="inner")
    assert len(joined) == 15 and np.isinf(joined.index.get_level_values("time")).all()
    np.testing.assert_allclose(joined["simulation"], joined["reference"], rtol=1e-6)
    tables = problem.table.petab_problem
    llh = petab.calculate_llh(tables.measurement_df, reference, tables.observable_df, tables.parameter_df)
    assert problem.nllh(**TOL) == pytest.approx(-llh, rel=1e-7)



@pytest.mark.parametrize("name, n_conditions", [("Boehm_JProteomeRes2014", 1), ("Fujita_SciSignal2010", 6),
                                                 ("Zheng_PNAS2012", 1), ("Elowitz_Nature2000", 1)])
def test_benchmark_matches_amici_reference(name, n_conditions):
    """A benchmark problem at its nominal parameters against AMICI's llh (tests/data/petab/references.yaml).

    At rtol 1e-8 / atol 1e-10 the difference was 5e-9 (Boehm), 1.6e-7 (Fujita), 3.9e-9 (Zheng, after its
    preequilibration) and 7.8e-7 (Elowitz, log10 observables; there our value stays put as the tolerances
    tighten to 1e-12, so the rest is AMICI's); the bound 2e-6 leaves room for AMICI's own solver error.
    Fujita's six conditions run as one batch.
    """
    reference = yaml.safe_load((DATA / "references.yaml").read_text())[name]
    problem = pss_petab.load(DATA / name / f"{name}.yaml")
    assert len(problem.conditions) == n_conditions and len(problem._batches) == 1
    assert problem.nllh(**TOL) == pytest.approx(-reference, rel=2e-6)
    # The model's Jacobian pattern, which its solves use, holds every entry jacfwd finds at random states.
    condition = problem.problem(problem.conditions[0])
    pattern = problem.model.jacobian_sparsity.mask
    assert np.array_equal(condition.rhs.jac_sparsity.mask, pattern)  # (Fujita's rhs is warped around a switch)
    jac = jax.jit(jax.vmap(jax.jacfwd(condition.rhs, argnums=1), in_axes=(None, 0, None)))
    states = np.random.default_rng(0).uniform(0.1, 10.0, (4, condition.y0.size)) * (1.0 + np.abs(condition.y0))
    nonzero = np.any(np.asarray(jac(1.0, states, condition.params)) != 0.0, axis=0)
    assert not np.any(nonzero & ~pattern) and 0 < pattern.sum() < pattern.size


def test_a_parameter_set_by_an_initial_assignment_follows_its_input(tmp_path):
    """k2 = 0.4 k1 by an SBML initial assignment: the nllh uses it, and problem() carries its value."""
    doc = libsbml.readSBMLFromString(chain_sbml())
    assignment = doc.getModel().createInitialAssignment()
    assignment.setSymbol("k2"), assignment.setMath(libsbml.parseL3Formula("0.4 * k1"))
    path = write_problem(tmp_path, sbml=libsbml.writeSBMLToString(doc),
                         parameters=[par("k1", "lin", 0.75), par("sd", "lin", 0.1, estimate=0)],
                         observables=[obs("obs_B", "B", "sd")], conditions=[{"conditionId": "main", "k_in": 0.0}],
                         measurements=[meas("obs_B", "main", 1.0, 1.0)])
    problem = pss_petab.load(path)
    _, B = chain_solution(1.0, 2.0, 0.5, 0.75, 0.3)
    expected = 0.5 * math.log(2 * math.pi * 0.1**2) + 0.5 * ((B - 1.0) / 0.1) ** 2
    assert problem.nllh(**TOL) == pytest.approx(expected, rel=1e-7)
    assert problem.problem("main").params["k2"] == pytest.approx(0.3, rel=1e-14)


# -- the report (pystiffsens petab MODEL.yaml --out DIR) ---------------------------------------
def test_report_puts_methods_side_by_side_finds_the_knob_and_sweeps_it(tmp_path):
    """On the chain A -(k1)-> B -(k2)->, rho(J) = max(k1, k2) = k1: k1 comes first (k2 sets rho once scaled
    by 10, elasticity log10(2 / 0.5)); --knob k1 sweeps it alone."""
    from pystiffsens.cli import main

    path = small_problem(tmp_path / "problem", parameters=[par("k1", "lin", 0.5), par("k2", "lin", 0.2),
                                                           par("sd", "lin", 0.1, estimate=0)])
    out = tmp_path / "report"
    assert main(["petab", str(path), "--out", str(out), "--solvers", "Rodas5P", "--sensitivities",
                 "ForwardDiffSensitivity,ReverseDiffAdjoint", "--knob", "k1", "--decades", "2", "--points", "3",
                 "--no-progress"]) == 0
    gradients = pd.read_csv(out / "gradients_at_nominal.csv")
    assert sorted(set(gradients["param"])) == ["k1", "k2"] and len(gradients) == 4
    assert (gradients["relative_deviation"] < 1e-8).all()  # forward mode and the discrete adjoint agree
    by_parameter = pd.read_csv(out / "stiffness_by_parameter.csv")
    assert list(by_parameter["param"].iloc[:2]) == ["k1", "k2"]
    np.testing.assert_allclose(by_parameter["elasticity"].iloc[:2], [1.0, math.log10(4.0)], rtol=1e-8)
    fits = pd.read_csv(out / "sweep" / "fits.csv")
    assert set(fits["problem"]) == {"problem:main (k1)"} and (out / "stiffness.png").exists()
    summary = (out / "summary.md").read_text()
    assert "Swept: k1." in summary and "| k1 | Rodas5P | ReverseDiffAdjoint |" in summary
    assert main(["petab", str(tmp_path / "missing.yaml"), "--out", str(out)]) == 2
