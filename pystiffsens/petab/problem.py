"""A PEtab v1 problem as a differentiable negative log-likelihood over its estimated parameters.

:func:`load` reads the tables (:mod:`~pystiffsens.petab.tables`) and the SBML model
(:mod:`pystiffsens.sbml`), and builds one JAX function of the estimated parameters ``x`` (on
their PEtab scales): every simulation (a pair of preequilibration and simulation condition)
is solved with ``pss.solve``, simulations of the same structure as one ``jax.vmap``ped batch
saved at the union of their measurement times, and the measurements' nllh terms are summed.
Its value and gradient are compiled once per solver, sensitivity and tolerances.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .. import _mappings, _xla, api, memory, sbml
from ..problem import Problem
from ..returncode import ReturnCode
from ..sbml import switches
from . import preequilibration, tables
from .formulas import MeasurementSet, compile_observables

_UNSCALE = {"lin": lambda v: v, "log": jnp.exp, "log10": lambda v: 10.0**v}


#: The key of :attr:`Evaluation.failed` for a failed backward solve.
BACKWARD_PASS = "backward pass"


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The negative log-likelihood (and its gradient) at one point, with how its simulations ended.

    Attributes
    ----------
    nllh : PEtab's negative log-likelihood; NaN when a simulation failed.
    gradient : its derivative by estimated parameter id, on its scale (None unless asked for);
        NaN entries when a simulation failed.
    status : :class:`~pystiffsens.ReturnCode`: ``Success``, or the code of the first failed
        simulation in :attr:`failed`.
    failed : ``{simulation: code}`` of every simulation that failed, each named by its condition
        id (``"preequilibration_id:condition_id"`` after a preequilibration). A preequilibration
        that reaches no steady state is ``Failure``. When every simulation succeeded but a
        backward solve of the gradient (a continuous adjoint's) failed, it is
        ``{BACKWARD_PASS: Failure}``: the nllh stands and every gradient entry is NaN.
    """

    nllh: float
    gradient: dict[str, float] | None
    status: ReturnCode
    failed: dict[str, ReturnCode]

    @property
    def success(self) -> bool:
        return self.status == ReturnCode.Success


@dataclasses.dataclass(frozen=True)
class _Simulation:
    """One simulation: a simulation condition, optionally preceded by a preequilibration condition."""

    preequilibration: str | None
    condition: str


@dataclasses.dataclass(frozen=True)
class _Batch:
    """Simulations of one structure, solved as one vmapped batch.

    ``segments`` are the problems solved one after the other, split at the event times
    ``event_times`` (the events at a segment's end are applied before the next starts);
    ``fires[lane, i, j]`` says whether the model's event ``j`` fires at ``event_times[i]`` in that
    lane; ``save`` gives, for each segment, the positions in ``times`` of the states it saves (its
    last saved state, the segment's end, starts the next segment). ``steady`` is the problem a
    postequilibration solves (from the last finite time or event) when the
    simulations have steady-state measurements (``times`` then ends with ``inf``), else None.
    """

    simulations: tuple[_Simulation, ...]
    times: np.ndarray
    event_times: tuple[float, ...]
    fires: np.ndarray
    segments: tuple
    save: tuple
    steady: Problem | None = None


def load(yaml_path, *, preequilibration_horizon: float = preequilibration.HORIZON, layout: str = "auto") -> PetabProblem:
    """Load a PEtab v1 problem: its negative log-likelihood as a differentiable function.

    Supported (PEtab v1 specification, ``doc/v1/documentation_data_format.rst``): one SBML model;
    condition tables setting parameters, compartments and species initial values (numbers or
    parameter ids; NaN for a species keeps its value); ``observableParameters`` and
    ``noiseParameters`` overrides (``;``-separated numbers or parameter ids); ``lin``/``log``/
    ``log10`` observable transformations; ``normal`` and ``laplace`` noise; estimated and fixed
    parameters on ``lin``/``log``/``log10`` scales; preequilibration and steady-state
    measurements (``time`` inf; see :mod:`~pystiffsens.petab.preequilibration`, each steady state
    simulated for ``preequilibration_horizon``);
    time-triggered SBML events (the solve is split at their times, which must not depend on
    estimated parameters; a measurement at an event time sees the state after the event);
    piecewise conditions that compare time with parameters (each solve, preequilibrations
    included, stops next to such a switch time on both sides, :mod:`pystiffsens.sbml.switches`; a
    switch time that depends on estimated parameters moves with them, and the gradient carries
    the move, :func:`pystiffsens.sbml.switches.warped`).
    ``layout`` is the SBML model's program layout (:func:`pystiffsens.sbml.load`).

    Refused with a ``ValueError`` naming the construct and the file: PEtab v2 and extensions,
    several models or problems, mapping tables, measurements before ``t = 0``, other
    transformations or noise distributions, events together with preequilibration, events whose
    time depends on an estimated parameter or lies at or before ``t = 0``; the SBML reader
    refuses SBML it cannot translate (e.g. events not triggered by time).
    """
    table = tables.read(yaml_path)
    model = sbml.load(str(table.sbml_path), layout=layout)
    return PetabProblem(table, model, float(preequilibration_horizon))


class PetabProblem:
    """A PEtab v1 problem loaded by :func:`load`.

    Attributes
    ----------
    nominal : dict, the estimated parameters' nominal values on their PEtab scales, by id.
    estimated : tuple of the estimated parameter ids (the parameter table's order).
    model : the SBML model (:class:`pystiffsens.sbml.Model`).
    conditions : the simulation condition ids, in the order of first measurement.
    priors : the parameter table's objective priors, ``{id: (objectivePriorType,
        objectivePriorParameters)}``; none of them enters :meth:`nllh` or :meth:`gradient`,
        which are the likelihood of the measurements.
    """

    def __init__(self, table: tables.Tables, model, horizon: float):
        self.table, self.model, self.horizon = table, model, horizon
        self.name = table.yaml_path.stem
        self.estimated = table.estimated
        self.priors = {pid: par.prior for pid, par in table.parameters.items() if par.prior is not None}
        self.nominal = {pid: float(tables.scale(table.parameters[pid].nominal, table.parameters[pid].scale))
                        for pid in self.estimated}
        self._conditions = tables.split_conditions(table, model.parameter_ids, model.species_ids, model.state_ids)
        self._check_sources()
        self._compiled = compile_observables(model, table.observables, table.parameters, str(table.yaml_path))
        sims = list(dict.fromkeys(_Simulation(m.preequilibration, m.condition) for m in table.measurements))
        self.conditions = tuple(dict.fromkeys(s.condition for s in sims))
        self._moving_switches = self._switches_moved_by_estimates(
            {name: self._conditions[name] for sim in sims for name in (sim.preequilibration, sim.condition) if name})
        if any(s.preequilibration for s in sims):
            self._pre_template = self._steady_template(0.0, "preequilibration")
        self._batches, order = self._plan(sims)
        # Each simulation's name, in the order of the programs' statuses (batch by batch, lane by lane).
        self._labels = [f"{s.preequilibration}:{s.condition}" if s.preequilibration else s.condition
                        for batch in self._batches for s in batch.simulations]
        # The internal measurement order, by batch: (row in the measurement table, batch, lane, index in its times).
        self._order = order
        self._measurements = MeasurementSet([table.measurements[k] for k, *_ in order], self._compiled)
        self._programs: collections.OrderedDict = collections.OrderedDict()
        self._long_records: set = set()  # gradient settings whose solves once filled the short step records
        self._steps: dict = {}  # (solver, rtol, atol, max_steps) -> the most steps a solve took at the last call

    # -- public API -------------------------------------------------------------------------
    def evaluate(self, x=None, *, gradient: bool = False, solver="Rodas5P", sensitivity=None, rtol: float = 1e-8,
                 atol: float = 1e-10, max_steps: int = 100_000) -> Evaluation:
        """The nllh at ``x`` (and with ``gradient=True`` its gradient), with the status of every simulation.

        ``x``: estimated parameter values by id on their PEtab scales (ids left out keep their
        nominal values; None: :attr:`nominal`). ``solver``, ``sensitivity``, ``rtol``, ``atol``,
        ``max_steps`` as in ``pss.solve``; the gradient is ``jax.grad`` of the nllh through
        ``pss.solve(..., sensitivity=sensitivity)``, so every pystiffsens sensitivity
        (``pss.sensitivity.names()``; None: pystiffsens's choice) gives it. The first call with a
        solver, sensitivity and tolerances compiles the program; later calls with any ``x`` run
        it without tracing. A gradient program keeps step records for 1024 steps per solve; the
        first time a solve takes more, a program whose records follow the solve is compiled,
        and runs from then on. A failed simulation makes the nllh and every gradient entry NaN.
        """
        vector = self._vector(x)
        if gradient:
            (nllh, (statuses, steps)), grad = self._gradient_at(vector, solver, sensitivity, rtol, atol, max_steps)
        else:
            run = self._program("nllh", solver, None, rtol, atol, max_steps)
            nllh, (statuses, steps) = run(vector)
        self._steps[(solver, float(rtol), float(atol), int(max_steps))] = int(steps)
        failed = {label: ReturnCode.from_value(code) for label, code in zip(self._labels, np.asarray(statuses))
                  if code != ReturnCode.Success}
        nan = bool(failed)
        grads = None
        if gradient:
            if not failed and not np.all(np.isfinite(grad)):
                # A backward solve runs after the simulations report their statuses; one that fails makes its
                # cotangents NaN (pss.solve's rule), and this is how it shows.
                failed = {BACKWARD_PASS: ReturnCode.Failure}
            grads = {pid: math.nan if failed else float(g) for pid, g in zip(self.estimated, np.asarray(grad))}
        status = next(iter(failed.values()), ReturnCode.Success)
        return Evaluation(math.nan if nan else float(nllh), grads, status, failed)

    def nllh(self, x=None, *, solver="Rodas5P", rtol: float = 1e-8, atol: float = 1e-10,
             max_steps: int = 100_000) -> float:
        """PEtab's negative log-likelihood of all measurements at ``x``: :meth:`evaluate`'s ``nllh``.

        NaN when a solve fails or a preequilibration does not reach a steady state (which
        simulation, and how, :meth:`evaluate` says).
        """
        return self.evaluate(x, solver=solver, rtol=rtol, atol=atol, max_steps=max_steps).nllh

    def gradient(self, x=None, *, solver="Rodas5P", sensitivity=None, rtol: float = 1e-8, atol: float = 1e-10,
                 max_steps: int = 100_000) -> dict[str, float]:
        """The derivative of :meth:`nllh` by estimated parameter id, on its scale: :meth:`evaluate`'s ``gradient``.

        NaN entries when a solve fails (which simulation, and how, :meth:`evaluate` says).
        """
        return self.evaluate(x, gradient=True, solver=solver, sensitivity=sensitivity, rtol=rtol, atol=atol,
                             max_steps=max_steps).gradient

    def simulations(self, x=None, *, solver="Rodas5P", rtol: float = 1e-8, atol: float = 1e-10,
                    max_steps: int = 100_000):
        """The measurement table with PEtab's ``simulation`` column (and the noise parameter as ``sigma``) at ``x``.

        A PEtab v1 simulation table: ``petab.v1.calculate_llh`` recomputes the likelihood from it
        (with ``problem.table.petab_problem``'s measurement, observable and parameter tables).
        """
        run = self._program("simulations", solver, None, rtol, atol, max_steps)
        simulation, sigma = (np.asarray(a) for a in run(self._vector(x))[0])
        frame = self.table.petab_problem.measurement_df.copy()
        rows = np.array([k for k, *_ in self._order])
        frame.loc[frame.index[rows], "simulation"] = simulation
        frame.loc[frame.index[rows], "sigma"] = sigma
        return frame

    def problem(self, condition_id: str | None = None, *, stiffness=None) -> Problem:
        """One simulation condition as a plain :class:`pss.Problem`, at the nominal parameters.

        ``params`` are the model inputs on linear scale (``model.parameter_ids``), the loss is the
        condition's nllh term as a function of them, ``saveat`` its measurement times (and, in a model
        whose right-hand side switches in time, the stops around each switch time in the time span,
        :mod:`pystiffsens.sbml.switches`) and ``y0``
        its initial state (after preequilibration, computed at the nominal parameters with
        Rodas5P, rtol 1e-8, atol 1e-10; ``y0`` is fixed, so derivatives by parameters that set
        initial values are not carried). ``stiffness`` is passed to ``pss.Problem`` (a model
        parameter id or a callable). Conditions with events inside their time span are refused.
        """
        if condition_id is None:
            if len(self.conditions) != 1:
                raise ValueError(f"{self.name} has {len(self.conditions)} simulation conditions; give "
                                 f"condition_id, one of {list(self.conditions)}.")
            condition_id = self.conditions[0]
        found = [(b, lane) for b, batch in enumerate(self._batches) for lane, s in enumerate(batch.simulations)
                 if s.condition == condition_id]
        if not found:
            raise ValueError(f"condition_id={condition_id!r} is not a simulation condition of {self.name}; "
                             f"valid: {list(self.conditions)}.")
        if len(found) > 1:
            raise ValueError(f"condition_id={condition_id!r} is simulated after {len(found)} different "
                             f"preequilibrations in {self.name}; pystiffsens.petab.problem cannot choose one.")
        b, lane = found[0]
        batch = self._batches[b]
        if batch.event_times:
            raise ValueError(f"condition {condition_id!r} of {self.name} has events at t = {list(batch.event_times)}; "
                             "a pss.Problem has no events, so it cannot be written as one.")
        if batch.steady is not None:
            raise ValueError(f"condition {condition_id!r} of {self.name} has steady-state measurements (time inf); "
                             "a pss.Problem saves at finite times, so it cannot be written as one.")
        theta = self._theta(jnp.asarray([self.nominal[pid] for pid in self.estimated]))
        p_pre, s_pre, p_sim, s_sim = (jax.tree.map(lambda a: a[lane], part) for part in self._inputs(batch, theta))
        y0, *_ = self._initial_state(batch, p_pre, s_pre, p_sim, s_sim, "Rodas5P", None, 1e-8, 1e-10, 100_000)
        if not bool(jnp.all(jnp.isfinite(y0))):
            raise ValueError(f"condition {condition_id!r} of {self.name}: the preequilibration did not reach a "
                             "steady state at the nominal parameters.")
        rows = [(k, batch.times[t_idx]) for k, bb, ll, t_idx in self._order if (bb, ll) == (b, lane)]
        subset = MeasurementSet([self.table.measurements[k] for k, _ in rows], self._compiled)
        times = np.unique([t for _, t in rows])
        t_end = float(times[-1]) if times[-1] > 0 else 1.0
        saveat = times
        # Its params are every model input, so any switch time may move with them: warp around every one.
        every = np.ones(len(self.model.switches), dtype=bool)
        if self.model.switches:  # also stop around the times where the right-hand side jumps (sbml.switches)
            warps = (_knots(times, (0.0, t_end)), every)
            stops = np.asarray(switches.stops(times, self.model.switch_times(p_sim), 0.0, t_end, warps=warps)[0])
            saveat = np.union1d(times, stops[stops > 0.0])
        t_index = np.searchsorted(saveat, [t for _, t in rows])
        theta = {k: float(v) for k, v in theta.items()}

        def loss(ts, ys, p):
            pk = {name: jnp.broadcast_to(value, (t_index.size,)) for name, value in p.items()}
            return jnp.sum(subset.nllh_terms(ys[t_index], ts[t_index], pk, theta))

        params = self._resolved(p_sim)
        rhs = self._rhs(times, (0.0, t_end), moving=every)
        return Problem(rhs, np.asarray(y0), (0.0, t_end), params, loss=loss, saveat=saveat,
                       stiffness=stiffness, name=f"{self.name}:{condition_id}")

    # -- building -----------------------------------------------------------------------------
    def _check_sources(self) -> None:
        """Every parameter id a condition or measurement names must be a table or model parameter."""
        known = set(self.table.parameters) | set(self.model.parameter_ids)
        for cond in self._conditions.values():
            for col, src in {**cond.parameters, **cond.species}.items():
                if isinstance(src, str) and src not in known:
                    raise ValueError(f"{self.table.condition_file}: condition {cond.id!r}, column {col!r} names "
                                     f"{src!r}, which is neither in the parameter table nor a model parameter.")
        for m in self.table.measurements:
            for src in m.observable_overrides + m.noise_overrides:
                if isinstance(src, str) and src not in known:
                    raise ValueError(f"{self.table.yaml_path}: measurement row {m.row + 1} overrides with {src!r}, "
                                     "which is neither in the parameter table nor a model parameter.")

    def _plan(self, sims: list[_Simulation]):
        """Group simulations into batches of one structure, and order the measurements by batch."""
        groups: dict = {}
        for sim in sims:
            pre = self._conditions[sim.preequilibration] if sim.preequilibration else None
            cond = self._conditions[sim.condition]
            times = [m.time for m in self.table.measurements
                     if (m.preequilibration, m.condition) == (sim.preequilibration, sim.condition)]
            steady = any(math.isinf(t) for t in times)
            # A steady-state measurement sees every event: the solve runs on past the last finite time.
            events = self._event_times(cond, math.inf if steady else max(times))
            if events and pre is not None:
                raise tables.refuse(f"events ({[e.id for e in self.model.events]}) together with preequilibration "
                                    f"(condition {sim.condition!r} after {sim.preequilibration!r})",
                                    self.table.yaml_path)
            key = (pre is not None, _overridden(pre), _overridden(cond), tuple(sorted(set(events.values()))), steady)
            groups.setdefault(key, []).append((sim, events))
        batches, order = [], []
        for b, ((*_, event_times, steady), group) in enumerate(groups.items()):
            lanes = {sim: lane for lane, (sim, _) in enumerate(group)}
            rows = [(k, m) for k, m in enumerate(self.table.measurements)
                    if _Simulation(m.preequilibration, m.condition) in lanes]
            times = np.array(sorted({m.time for _, m in rows}))
            post = None
            if steady:  # inf sorts last; with no finite time, t = 0 is saved (unmeasured) to start from
                times = np.union1d(times, [0.0]) if times.size == 1 else times
                start = max((float(times[-2]), *event_times))
                post = self._steady_template(start, "postequilibration")
            segments, save = self._segments(times[:-1] if steady else times, event_times)
            fires = np.array([[[events.get(j) == t for j in range(len(self.model.events))] for t in event_times]
                              for _, events in group], dtype=bool).reshape(len(group), len(event_times),
                                                                            len(self.model.events))
            batches.append(_Batch(tuple(lanes), times, event_times, fires, segments, save, post))
            for k, m in rows:
                order.append((k, b, lanes[_Simulation(m.preequilibration, m.condition)],
                              int(np.searchsorted(times, m.time))))
        return batches, order

    def _event_times(self, cond, t_end: float) -> dict[int, float]:
        """The times of the events (by index) in ``(0, t_end]`` in this condition.

        Event times must not depend on estimated parameters (checked by differentiating them).
        """
        out = {}
        for j, event in enumerate(self.model.events):

            def time_of(x, event=event):
                return event.time(self._condition_inputs(cond, self._theta(x))[0])

            x = jnp.asarray([self.nominal[pid] for pid in self.estimated])
            t_event = float(time_of(x))
            if self.estimated and np.any(np.asarray(jax.grad(time_of)(x)) != 0):
                raise tables.refuse(f"the time of event {event.id!r} depending on estimated parameters",
                                    self.table.yaml_path)
            if t_event <= 0:
                raise tables.refuse(f"event {event.id!r} at t = {t_event} (at or before the start t = 0)",
                                    self.table.yaml_path)
            if t_event <= t_end:
                out[j] = t_event
        return out

    def _switches_moved_by_estimates(self, conditions: dict) -> np.ndarray:
        """Which of the model's switch times (:meth:`pystiffsens.sbml.Model.switch_times`) depend on estimated
        parameters in some of ``conditions`` (a boolean per switch). (One Jacobian for all conditions: one per
        condition made loading Isensee_JCB2018 4x slower.)"""
        if not (self.model.switches and self.estimated):
            return np.zeros(len(self.model.switches), dtype=bool)

        def times(x):
            theta = self._theta(x)
            return jnp.stack([self.model.switch_times(self._condition_inputs(cond, theta)[0])
                              for cond in conditions.values()])

        x = jnp.asarray([self.nominal[pid] for pid in self.estimated])
        return np.any(np.asarray(jax.jacfwd(times)(x)) != 0, axis=(0, 2))

    def _rhs(self, saveat, tspan, moving=None):
        """The model's right-hand side for solves saving at ``saveat`` over ``tspan``: warped in time around the
        switch times ``moving`` (a boolean per switch; default: those the estimated parameters move), so that
        gradients carry the moves of those switches (:func:`pystiffsens.sbml.switches.warped`, whose stops
        :meth:`_switch_stops` adds); the model's own where none move."""
        moving = self._moving_switches if moving is None else moving
        if not np.any(moving):
            return self.model.sparse_rhs
        which = np.flatnonzero(moving)
        return switches.warped(self.model.sparse_rhs, lambda p: self.model.switch_times(p)[which],
                               _knots(saveat, tspan))

    def _steady_template(self, start: float, kind: str) -> Problem:
        """The problem a steady-state solve from ``start`` solves: ``horizon`` long, saving its end (built while
        loading: a Problem made inside a trace holds tracers)."""
        end = start + self.horizon
        return Problem(self._rhs([end], (start, end)), np.zeros(len(self.model.state_ids)), (start, end),
                       self._template_params, saveat=[end], name=f"{self.name}:{kind}")

    def _segments(self, times: np.ndarray, events: tuple[float, ...]):
        """The problems between events, each saving its measurement times and its end."""
        bounds = [0.0, *events]
        t_end = float(times[-1])
        segments: list[Problem | None] = []
        save = []
        y_dummy = np.zeros(len(self.model.state_ids))
        p_default = self._template_params
        for i, start in enumerate(bounds):
            stop = bounds[i + 1] if i + 1 < len(bounds) else t_end
            inside = times[(times >= start) & ((times < stop) if i + 1 < len(bounds) else (times <= stop))]
            saveat = np.union1d(inside, [stop])
            if stop <= start:  # an event at the last measurement time: nothing left to integrate
                segments.append(None)
            else:
                segments.append(Problem(self._rhs(saveat, (start, stop)), y_dummy, (start, stop), p_default,
                                        saveat=saveat, name=f"{self.name}:segment"))
            save.append(np.searchsorted(saveat, inside))
        return tuple(segments), tuple(save)

    def _resolved(self, p: Mapping) -> dict[str, float]:
        """``p`` as floats, the NaN of a parameter set by an initial assignment replaced by the assignment's value.

        A model input with an initial assignment is NaN in ``model.defaults`` (the model then
        evaluates the assignment); a plain ``pss.Problem`` needs finite parameters, so it gets
        the value the assignment has at ``p``'s other inputs (SBML L3V2 Sect. 4.8).
        """
        values = {name: float(value) for name, value in p.items()}
        unset = [name for name in self.model.assigned_parameter_ids if math.isnan(values.get(name, math.nan))]
        given = {name: value for name, value in values.items() if name not in unset}
        state = np.zeros(len(self.model.state_ids))
        for name in unset:
            values[name] = float(self.model.compile(name)(0.0, state, given))
        return values

    @functools.cached_property
    def _template_params(self) -> dict[str, float]:
        """The parameters of the template problems: a condition's ``p`` has the same entries.

        That is every model input, and the constant species that condition tables set (they
        reach the model through ``p``), each at its value in the file.
        """
        values = self._resolved(self.model.defaults)
        species = sorted({name for cond in self._conditions.values() for name in cond.parameters} - set(values))
        state = np.zeros(len(self.model.state_ids))
        for name in species:
            values[name] = float(self.model.compile(name)(0.0, state, values))
        return values

    # -- the JAX function ---------------------------------------------------------------------
    def _theta(self, x) -> dict:
        """The parameter table's values on linear scale: estimated ones from ``x``, fixed ones nominal."""
        theta = {}
        for pid, par in self.table.parameters.items():
            if par.estimate:
                theta[pid] = _UNSCALE[par.scale](x[self.estimated.index(pid)])
            else:
                theta[pid] = jnp.asarray(par.nominal)
        return theta

    def _condition_inputs(self, cond, theta):
        """``(p, species)`` of a condition: model inputs and species overrides (PEtab v1, condition table)."""
        base = {name: theta[name] if name in theta else jnp.asarray(float(value))
                for name, value in self.model.defaults.items()}
        p = dict(base)
        for name, src in cond.parameters.items():
            p[name] = _value(src, theta, base)
        species = {name: _value(src, theta, base) for name, src in cond.species.items()
                   if not (isinstance(src, float) and math.isnan(src))}
        return p, species

    def _inputs(self, batch: _Batch, theta):
        """Stacked ``(p_pre, species_pre, p_sim, species_sim)`` over the batch's lanes."""
        parts: list = [[], [], [], []]
        for sim in batch.simulations:
            if sim.preequilibration:
                p_pre, s_pre = self._condition_inputs(self._conditions[sim.preequilibration], theta)
            else:
                p_pre, s_pre = {}, {}
            p_sim, s_sim = self._condition_inputs(self._conditions[sim.condition], theta)
            for part, value in zip(parts, (p_pre, s_pre, p_sim, s_sim)):
                part.append(value)
        return tuple(jax.tree.map(lambda *leaves: jnp.stack(leaves), *part) for part in parts)

    def _initial_state(self, batch, p_pre, s_pre, p_sim, s_sim, solver, sensitivity, rtol, atol, max_steps,
                       max_saved_steps=None):
        """``(y, status, steps)``: a lane's state at ``t = 0`` of the simulation condition (after preequilibration if
        any), and the steps the preequilibration took."""
        if not batch.simulations[0].preequilibration:
            return self.model.initial_state(p_sim, species=s_sim), jnp.int32(ReturnCode.Success), jnp.int32(0)
        y_pre = self.model.initial_state(p_pre, species=s_pre)
        y_ss, status, steps = preequilibration.steady_state(self._pre_template, p_pre, y_pre, solver=solver,
                                                            sensitivity=sensitivity, rtol=rtol, atol=atol,
                                                            max_steps=max_steps, max_saved_steps=max_saved_steps,
                                                            saveat=self._switch_stops(self._pre_template, p_pre)[0])
        return self.model.initial_state(p_sim, species=s_sim, y=y_ss), status, steps

    def _switch_stops(self, template: Problem, p):
        """``(saveat, positions)`` of a solve of ``template`` that steps over the switch times of the inputs ``p``
        (:func:`pystiffsens.sbml.switches.stops`, with the stops its warped right-hand side needs, :meth:`_rhs`);
        ``(None, None)`` in a model without switches."""
        if not self.model.switches:
            return None, None
        warps = (_knots(template.saveat, template.tspan), self._moving_switches) if any(self._moving_switches) else None
        return switches.stops(template.saveat, self.model.switch_times(p), *template.tspan, warps=warps)

    def _simulate(self, batch: _Batch, inputs, solver, sensitivity, rtol, atol, max_steps, max_saved_steps=None):
        """``(states, status, steps)`` of every lane from the batch's stacked ``inputs``: ``(lanes, times, states)``,
        ``(lanes,)``, ``(lanes,)``.

        A lane's status is that of its first failed solve (``Success`` when none failed); its steps, the most steps
        one of its solves accepted (each solve keeps its own step records).
        """

        def lane(p_pre, s_pre, p_sim, s_sim, fires):
            y, status, steps = self._initial_state(batch, p_pre, s_pre, p_sim, s_sim, solver, sensitivity, rtol,
                                                   atol, max_steps, max_saved_steps)
            ys = jnp.full((batch.times.size, y.size), jnp.nan)
            offset = 0
            for i, (segment, save) in enumerate(zip(batch.segments, batch.save)):
                if segment is not None:
                    saveat, positions = self._switch_stops(segment, p_sim)
                    sol = api.solve(segment, solver, sensitivity=sensitivity, params=p_sim, y0=y, saveat=saveat,
                                    rtol=rtol, atol=atol, max_steps=max_steps, max_saved_steps=max_saved_steps)
                    saved = sol.ys if positions is None else sol.ys[positions]
                    ys = ys.at[offset:offset + save.size].set(saved[save])
                    y = saved[-1]
                    status = jnp.where(status == ReturnCode.Success, sol.status, status)
                    steps = jnp.maximum(steps, sol.stats["n_steps"])
                else:
                    ys = ys.at[offset:offset + save.size].set(jnp.broadcast_to(y, (save.size, y.size)))
                offset += save.size
                if i < len(batch.event_times):
                    y = self._apply_events(batch.event_times[i], fires[i], y, p_sim)
            if batch.steady is not None:  # steady-state measurements: on from the last state to a steady state
                y_ss, post_status, post_steps = preequilibration.steady_state(
                    batch.steady, p_sim, y, solver=solver, sensitivity=sensitivity, rtol=rtol, atol=atol,
                    max_steps=max_steps, max_saved_steps=max_saved_steps,
                    saveat=self._switch_stops(batch.steady, p_sim)[0])
                ys = ys.at[-1].set(y_ss)
                status = jnp.where(status == ReturnCode.Success, post_status, status)
                steps = jnp.maximum(steps, post_steps)
            return ys, status, steps

        p_pre, s_pre, p_sim, s_sim = inputs
        inputs = (p_pre, s_pre, p_sim, s_sim, jnp.asarray(batch.fires))
        if len(batch.simulations) == 1:  # one lane: no batching rules to trace through
            return jax.tree.map(lambda a: a[None], lane(*jax.tree.map(lambda a: a[0], inputs)))
        return jax.vmap(lane)(*inputs)

    def _apply_events(self, t_event: float, fires, y, p):
        """The state after the events that fire at ``t_event`` in this lane (``fires``), in the model's order."""
        for event, fire in zip(self.model.events, fires):
            y = jnp.where(fire, event.assign(t_event, y, p), y)
        return y

    def _nllh_fn(self, solver, sensitivity, rtol, atol, max_steps, max_saved_steps=None):
        simulate = self._simulations_fn(solver, sensitivity, rtol, atol, max_steps, max_saved_steps)

        def nllh(x):
            *simulated, statuses, steps = simulate(x)
            return jnp.sum(self._measurements.nllh_terms(*simulated)), (statuses, steps)

        return nllh

    def _simulations_fn(self, solver, sensitivity, rtol, atol, max_steps, max_saved_steps=None):
        """``x -> (ys, ts, p, theta, statuses, steps)``: per measurement in the internal order, per simulation, and the
        most steps a solve accepted."""

        def simulate(x):
            theta = self._theta(x)
            ys, ts, p, statuses, steps = [], [], {}, [], []
            for b, batch in enumerate(self._batches):
                inputs = self._inputs(batch, theta)
                states, status, lane_steps = self._simulate(batch, inputs, solver, sensitivity, rtol, atol, max_steps,
                                                            max_saved_steps)
                statuses.append(status)
                steps.append(jnp.max(lane_steps))
                rows = [(lane, t_idx) for _, bb, lane, t_idx in self._order if bb == b]
                lanes = np.array([r[0] for r in rows], dtype=int)
                t_idx = np.array([r[1] for r in rows], dtype=int)
                ys.append(states[lanes, t_idx])
                ts.append(jnp.asarray(batch.times[t_idx]))
                for name, values in inputs[2].items():
                    p.setdefault(name, []).append(values[lanes])
            p = {name: jnp.concatenate(parts) for name, parts in p.items()}
            return (jnp.concatenate(ys), jnp.concatenate(ts), p, theta, jnp.concatenate(statuses),
                    jnp.max(jnp.stack(steps)))

        return simulate

    def _gradient_at(self, vector, solver, sensitivity, rtol, atol, max_steps):
        """The gradient program's ``((nllh, (statuses, steps)), gradient)`` at ``vector``, with step records that hold
        the solves.

        Inside a program, ``pss.solve`` holds two lengths of step records for a sensitivity that
        records steps (:func:`pystiffsens.memory.program_lengths`): a first one and, for solves
        that fill it, ``max_steps`` with checkpoints; both are traced and compiled. Here the
        program holds the first length only (``max_saved_steps``), where a solve that fills it
        stops with ``MaxIters``; then, and from then on for these settings, the program that
        holds both runs instead. When the last likelihood or gradient call with this solver and
        tolerances had a solve of more steps than the first length, that program runs at once.
        Either program gives the gradient the other would, and the first length alone compiles
        in less time: Alkan_SciSignal2018's first discrete-adjoint gradient call took 57 s
        instead of 91 s (benchmarks/README.md, section 8).
        """
        key = (solver, sensitivity, float(rtol), float(atol), int(max_steps))
        short = short_records(max_steps)
        longer = self._steps.get((solver, float(rtol), float(atol), int(max_steps)), 0) + 1 > short
        if short < max_steps and not longer and key not in self._long_records:
            out = self._program("gradient", solver, sensitivity, rtol, atol, max_steps, short)(vector)
            if not np.any(np.asarray(out[0][1][0]) == ReturnCode.MaxIters):
                return out
        self._long_records.add(key)
        return self._program("gradient", solver, sensitivity, rtol, atol, max_steps)(vector)

    def _program(self, kind: str, solver, sensitivity, rtol, atol, max_steps, max_saved_steps=None):
        """The compiled program of ``kind`` for these settings; the least recently used ones are dropped where the
        process runs short of memory mappings (:func:`pystiffsens._mappings.make_room`)."""
        key = (kind, solver, sensitivity, float(rtol), float(atol), int(max_steps), max_saved_steps)
        if key in self._programs:
            self._programs.move_to_end(key)
        else:
            _mappings.make_room(self._programs)
            if kind == "simulations":
                simulate = self._simulations_fn(solver, sensitivity, rtol, atol, max_steps)

                def fn(x):
                    *simulated, statuses, _ = simulate(x)
                    return self._measurements.evaluate(*simulated), statuses
            else:
                fn = self._nllh_fn(solver, sensitivity, rtol, atol, max_steps, max_saved_steps)
                fn = fn if kind == "nllh" else jax.value_and_grad(fn, has_aux=True)
            self._programs[key] = _xla.jit(fn)
        return self._programs[key]

    def _vector(self, x) -> jnp.ndarray:
        """``x`` (a dict by estimated id, on scale; None: nominal) as the vector the programs take."""
        if x is None:
            return jnp.asarray([self.nominal[pid] for pid in self.estimated], dtype=jnp.float64)
        if not isinstance(x, Mapping):
            raise ValueError(f"x must be a dict of estimated parameter values by id (on their scales), got "
                             f"{type(x).__name__}; ids: {list(self.estimated)}.")
        unknown = sorted(set(x) - set(self.estimated))
        if unknown:
            raise ValueError(f"x has {unknown}, which are not estimated parameters of {self.name}; "
                             f"valid ids: {list(self.estimated)}.")
        return jnp.asarray([float(x.get(pid, self.nominal[pid])) for pid in self.estimated], dtype=jnp.float64)


def _knots(saveat, tspan) -> np.ndarray:
    """The stops of every solve saving at ``saveat`` over ``tspan``: the knots of its warped right-hand side."""
    return np.union1d(np.asarray(saveat, dtype=np.float64), np.asarray(tspan, dtype=np.float64))


def short_records(max_steps: int) -> int:
    """The length of step records a gradient program holds first (:meth:`PetabProblem._gradient_at`)."""
    return memory.aligned(min(memory.INITIAL_SAVED_STEPS, max_steps))


def _overridden(cond) -> tuple[str, ...]:
    """Species a condition sets (non-NaN), which fixes the structure of its initial state."""
    if cond is None:
        return ()
    return tuple(sorted(name for name, src in cond.species.items()
                        if not (isinstance(src, float) and math.isnan(src))))


def _value(src, theta, base):
    """A value source (a number or a parameter id) in a condition with model inputs ``base``."""
    if isinstance(src, float):
        return jnp.asarray(src)
    return theta[src] if src in theta else base[src]
