"""Observable and noise formulas of a PEtab v1 problem as JAX functions, and their per-measurement values.

PEtab v1, "Observables table": ``observableFormula`` may use any model id (species, parameters,
compartments, assignment-rule targets, ``time``), parameter table ids, and the placeholders
``observableParameter${n}_${observableId}``; ``noiseFormula`` may in addition use the
placeholders ``noiseParameter${n}_${observableId}`` and the observable itself (its simulated
value, untransformed). The model compiles each formula (``model.compile``); the names it does
not know are passed as ``extra`` values: the placeholders, the parameter table ids that are not
model inputs, and the observable id.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from petab.v1.math import sympify_petab

from .likelihood import negative_log_likelihood
from .tables import Measurement, Observable


@dataclasses.dataclass(frozen=True)
class CompiledObservable:
    """An observable's formula and noise formula compiled by the model, with the names each takes as extra."""

    observable: Observable
    value: object
    sigma: object
    value_extra: tuple[str, ...]
    sigma_extra: tuple[str, ...]


def _parse(formula: str, where: str):
    """A PEtab formula as a sympy expression (``petab.v1.math.sympify_petab``, PEtab's own grammar)."""
    try:
        return sympify_petab(formula)
    except Exception as error:  # sympy's and petab's parser errors have no common base class
        raise ValueError(f"{where}: the formula {formula!r} cannot be parsed ({error}).") from None


def compile_observables(model, observables: dict[str, Observable], table_ids, where: str) -> dict:
    """Each observable compiled: ``value(t, y, p, extra)`` and ``sigma(t, y, p, extra)``."""
    model_ids = set(model.parameter_ids)
    table_only = set(table_ids) - model_ids
    out = {}
    for oid, obs in observables.items():
        formula = _parse(obs.formula, f"{where}, observable {oid!r}")
        noise = _parse(obs.noise_formula, f"{where}, noiseFormula of {oid!r}")
        value_extra = tuple(sorted(set(obs.observable_placeholders)
                                   | ({str(s) for s in formula.free_symbols} & table_only)))
        sigma_extra = tuple(sorted(set(obs.observable_placeholders) | set(obs.noise_placeholders)
                                   | ({str(s) for s in noise.free_symbols} & (table_only | {oid}))))
        try:
            value = model.compile(formula, extra=value_extra)
            sigma = model.compile(noise, extra=sigma_extra)
        except (ValueError, KeyError, NameError) as error:
            raise ValueError(f"{where}: observable {oid!r}: {error}") from None
        out[oid] = CompiledObservable(obs, value, sigma, value_extra, sigma_extra)
    return out


class MeasurementSet:
    """Measurements, grouped by observable, whose nllh terms are computed from simulated states.

    ``nllh_terms(ys, ts, p, theta)`` takes, per measurement in the given order, the state
    ``ys[k]`` at time ``ts[k]`` and the model inputs ``p[name][k]`` of its condition, with
    ``theta`` the parameter table's values (linear scale), and returns each measurement's
    ``-log pi(m | y, sigma)`` (:func:`~pystiffsens.petab.likelihood.negative_log_likelihood`).
    """

    def __init__(self, measurements: list[Measurement], compiled: dict):
        self.size = len(measurements)
        self.groups = []
        for oid, cobs in compiled.items():
            positions = np.array([k for k, m in enumerate(measurements) if m.observable == oid], dtype=int)
            if positions.size == 0:
                continue
            rows = [measurements[k] for k in positions]
            sources = {}
            for j, name in enumerate(cobs.observable.observable_placeholders):
                sources[name] = [m.observable_overrides[j] for m in rows]
            for j, name in enumerate(cobs.observable.noise_placeholders):
                sources[name] = [m.noise_overrides[j] for m in rows]
            values = np.array([m.value for m in rows])
            self.groups.append((cobs, positions, sources, values))

    def evaluate(self, ys, ts, p, theta):
        """``(simulation, sigma)``: each measurement's observable (untransformed) and noise parameter."""
        simulation, noise = jnp.zeros(self.size), jnp.zeros(self.size)
        for cobs, positions, sources, _ in self.groups:
            y, t = ys[positions], ts[positions]
            # Only the inputs the two formulas read, not every model parameter: a model of hundreds of parameters
            # otherwise traced hundreds of gathers per observable (Lang_PLOSComputBiol2024: 14.5 s of its gradient's
            # first call).
            read = dict.fromkeys(cobs.value.inputs(p) + cobs.sigma.inputs(p))
            pk = {name: p[name][positions] for name in read}
            extra = {name: _resolve_column(column, theta, p, positions) for name, column in sources.items()}
            for name in set(cobs.value_extra + cobs.sigma_extra) - set(extra) - {cobs.observable.id}:
                extra[name] = jnp.broadcast_to(theta[name], (positions.size,))
            value = _vmapped(cobs.value, cobs.value_extra)(t, y, pk, extra)
            extra[cobs.observable.id] = value
            sigma = _vmapped(cobs.sigma, cobs.sigma_extra)(t, y, pk, extra)
            simulation = simulation.at[positions].set(value)
            noise = noise.at[positions].set(sigma)
        return simulation, noise

    def nllh_terms(self, ys, ts, p, theta):
        simulation, sigma = self.evaluate(ys, ts, p, theta)
        terms = jnp.zeros(self.size)
        for cobs, positions, _, values in self.groups:
            terms = terms.at[positions].set(negative_log_likelihood(
                values, simulation[positions], sigma[positions], cobs.observable.transformation,
                cobs.observable.distribution))
        return terms


def _vmapped(fn, names):
    """``fn(t, y, p, extra)`` over a group's measurements, given only the extra values it takes."""
    return lambda t, y, p, extra: jax.vmap(fn)(t, y, p, {name: extra[name] for name in names})


def _resolve_column(column: list, theta: dict, p: dict, positions: np.ndarray):
    """One placeholder's values over a group's measurements (at ``positions``): numbers, parameter table values or
    model inputs."""
    out = jnp.zeros(len(column))
    for src in dict.fromkeys(column):
        idx = np.array([k for k, s in enumerate(column) if s == src or _both_nan(s, src)], dtype=int)
        if isinstance(src, float):
            value = jnp.full(idx.size, src)
        elif src in theta:
            value = jnp.full(idx.size, theta[src])
        else:
            value = p[src][positions[idx]]
        out = out.at[idx].set(value)
    return out


def _both_nan(a, b) -> bool:
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
