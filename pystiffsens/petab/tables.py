"""Read a PEtab v1 problem and map its tables onto the model: what is supported, and what is refused.

Everything here works on the tables only (through ``petab.v1``) and the model's lists of ids;
nothing is solved. The PEtab v1 specification (``doc/v1/documentation_data_format.rst`` of
PEtab-dev/PEtab) defines the tables; the sections are cited where a rule is applied.

A *value source* is how a condition or measurement names a value: a float (a number in the
table) or a string, a parameter id. A string resolves to the parameter table's value of that
id (estimated or fixed, on linear scale) if it has a row there, otherwise to the model
parameter of that name in the condition being simulated.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from pathlib import Path

import numpy as np
import petab.v1 as petab
from petab.v1 import C

from .likelihood import DISTRIBUTIONS, TRANSFORMATIONS

SCALES = ("lin", "log", "log10")


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A row of the parameter table: ``nominal`` on linear scale, ``scale`` the estimation scale.

    ``prior``: the row's ``(objectivePriorType, objectivePriorParameters)``, or None (flat). Priors
    belong to the objective of an estimation, not to the likelihood of the measurements, so
    they are kept here and enter no nllh (as AMICI's llh leaves them out).
    """

    id: str
    scale: str
    nominal: float
    estimate: bool
    prior: tuple[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class Observable:
    """A row of the observables table; ``observable_placeholders``/``noise_placeholders`` in order 1..n."""

    id: str
    formula: str
    noise_formula: str
    transformation: str
    distribution: str
    observable_placeholders: tuple[str, ...]
    noise_placeholders: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Condition:
    """A row of the condition table, split by what its columns set (PEtab v1, "Condition table").

    ``parameters`` maps model parameter (and compartment) ids to value sources; ``species`` maps
    species ids to value sources, NaN meaning "keep the preequilibrated or model value".
    """

    id: str
    parameters: dict
    species: dict


@dataclasses.dataclass(frozen=True)
class Measurement:
    """A row of the measurement table with its overrides as value sources."""

    row: int
    observable: str
    preequilibration: str | None
    condition: str
    time: float
    value: float
    observable_overrides: tuple
    noise_overrides: tuple


@dataclasses.dataclass(frozen=True)
class Tables:
    """A PEtab v1 problem read and checked against what pystiffsens supports."""

    yaml_path: Path
    sbml_path: Path
    parameters: dict[str, Parameter]
    observables: dict[str, Observable]
    conditions: dict[str, dict]
    measurements: tuple[Measurement, ...]
    petab_problem: petab.Problem
    condition_file: str

    @property
    def estimated(self) -> tuple[str, ...]:
        """Ids of the estimated parameters, in the parameter table's order."""
        return tuple(pid for pid, par in self.parameters.items() if par.estimate)


def refuse(construct: str, where, fix: str = "") -> ValueError:
    """The error for a PEtab construct pystiffsens does not support, naming it and the file."""
    return ValueError(f"{where}: {construct} is not supported by pystiffsens.petab." + (f" {fix}" if fix else ""))


def read(yaml_path) -> Tables:
    """Read the PEtab v1 problem of ``yaml_path`` (tables only; the model is read by the caller).

    Raises ``ValueError`` naming the file and construct for everything outside the supported
    subset (see :func:`pystiffsens.petab.load`).
    """
    yaml_path = Path(yaml_path)
    if not yaml_path.is_file():
        raise ValueError(f"yaml_path={str(yaml_path)!r} is not a file; give the path of a PEtab problem's yaml file.")
    config = petab.load_yaml(yaml_path)
    version = str(config.get(C.FORMAT_VERSION, ""))
    if version.split(".")[0] != "1":
        raise refuse(f"format_version {version!r}", yaml_path, "Only PEtab v1 problems (format_version: 1) are read.")
    if config.get(C.EXTENSIONS):
        raise refuse(f"extensions {sorted(config[C.EXTENSIONS])}", yaml_path)
    problems = config[C.PROBLEMS]
    if len(problems) != 1:
        raise refuse(f"a yaml file with {len(problems)} problems", yaml_path, "Give one problem.")
    entry = problems[0]
    if entry.get(C.MAPPING_FILES):
        raise refuse("a mapping table (mapping_files)", yaml_path)
    sbml_files = entry.get(C.SBML_FILES, [])
    if len(sbml_files) != 1:
        raise refuse(f"{len(sbml_files)} SBML files", yaml_path, "Give exactly one SBML model (sbml_files).")
    sbml_path = yaml_path.parent / sbml_files[0]
    with warnings.catch_warnings():
        # petab 0.8's readers use pandas arguments that pandas 3 deprecates; not the user's concern.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"petab\.")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"petab\.")
        # Visualization files do not enter the likelihood: a missing or unreadable one is no reason to refuse.
        tables_only = {**config, C.PROBLEMS: [{k: v for k, v in entry.items() if k != C.VISUALIZATION_FILES}]}
        problem = petab.Problem.from_yaml(tables_only, base_path=str(yaml_path.parent))
    parameters = _parameters(problem.parameter_df, _file(yaml_path, config, C.PARAMETER_FILE))
    observables = _observables(problem.observable_df, _file(yaml_path, entry, C.OBSERVABLE_FILES))
    measurements = _measurements(problem.measurement_df, observables,
                                 _file(yaml_path, entry, C.MEASUREMENT_FILES))
    condition_file = _file(yaml_path, entry, C.CONDITION_FILES)
    conditions = _conditions(problem.condition_df, condition_file)
    used = {m.condition for m in measurements} | {m.preequilibration for m in measurements if m.preequilibration}
    missing = sorted(used - set(conditions))
    if missing:
        raise ValueError(f"{_file(yaml_path, entry, C.MEASUREMENT_FILES)}: conditions {missing} are not in the "
                         f"condition table; known conditions: {sorted(conditions)}.")
    return Tables(yaml_path, sbml_path, parameters, observables, conditions, tuple(measurements), problem,
                  condition_file)


def _file(yaml_path: Path, entry: dict, key: str) -> str:
    files = entry.get(key)
    files = [files] if isinstance(files, str) else list(files or [])
    return ", ".join(str(yaml_path.parent / f) for f in files) or str(yaml_path)


def source(value, where: str):
    """A table cell as a value source: a float, a parameter id, or NaN for an empty cell."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            if not petab.is_valid_identifier(text):
                raise ValueError(f"{where}: {value!r} is neither a number nor a parameter id.") from None
            return text
    if isinstance(value, numbers.Real):
        return float(value)
    raise ValueError(f"{where}: {value!r} is neither a number nor a parameter id.")


def _parameters(df, where: str) -> dict[str, Parameter]:
    """The parameter table (PEtab v1, "Parameter table"), with each row's objective prior (not part of the nllh)."""
    out = {}
    for pid, row in df.iterrows():
        prior = row.get(C.OBJECTIVE_PRIOR_TYPE, "")
        prior = None if petab.is_empty(prior) else (str(prior), str(row.get(C.OBJECTIVE_PRIOR_PARAMETERS, "")))
        scale = str(row[C.PARAMETER_SCALE])
        if scale not in SCALES:
            raise ValueError(f"{where}: parameterScale {scale!r} of {pid!r} is not one of {list(SCALES)}.")
        nominal = float(row[C.NOMINAL_VALUE]) if not petab.is_empty(row.get(C.NOMINAL_VALUE)) else math.nan
        estimate = bool(int(row[C.ESTIMATE]))
        if not math.isfinite(nominal):
            raise ValueError(f"{where}: parameter {pid!r} has no finite nominalValue ({row.get(C.NOMINAL_VALUE)!r}); "
                             "pystiffsens.petab needs one for every parameter (the default point x=None).")
        out[str(pid)] = Parameter(str(pid), scale, nominal, estimate, prior)
    return out


def _observables(df, where: str) -> dict[str, Observable]:
    """The observables table (PEtab v1, "Observables table")."""
    out = {}
    for oid, row in df.iterrows():
        oid = str(oid)
        transformation = row.get(C.OBSERVABLE_TRANSFORMATION, C.LIN)
        transformation = C.LIN if petab.is_empty(transformation) else str(transformation)
        if transformation not in TRANSFORMATIONS:
            raise refuse(f"observableTransformation {transformation!r} of observable {oid!r}", where,
                         f"Valid: {list(TRANSFORMATIONS)}.")
        distribution = row.get(C.NOISE_DISTRIBUTION, C.NORMAL)
        distribution = C.NORMAL if petab.is_empty(distribution) else str(distribution)
        if distribution not in DISTRIBUTIONS:
            raise refuse(f"noiseDistribution {distribution!r} of observable {oid!r}", where,
                         f"Valid: {list(DISTRIBUTIONS)}.")
        formula, noise = str(row[C.OBSERVABLE_FORMULA]), str(row[C.NOISE_FORMULA])
        out[oid] = Observable(
            oid, formula, noise, transformation, distribution,
            tuple(petab.get_formula_placeholders(formula, oid, "observable")),
            tuple(petab.get_formula_placeholders(noise, oid, "noise")),
        )
    return out


def _overrides(value, placeholders: tuple, kind: str, where: str) -> tuple:
    """``observableParameters``/``noiseParameters`` of a measurement: one value source per placeholder."""
    values = [] if petab.is_empty(value) else petab.split_parameter_replacement_list(value)
    if len(values) != len(placeholders):
        raise ValueError(f"{where}: {kind} {value!r} gives {len(values)} values, but the formula has "
                         f"{len(placeholders)} placeholders {list(placeholders)} (PEtab v1, measurement table).")
    return tuple(source(v, where) for v in values)


def _measurements(df, observables: dict[str, Observable], where: str) -> list[Measurement]:
    """The measurement table (PEtab v1, "Measurement table"); ``time`` ``inf`` is a steady-state measurement."""
    out = []
    for i, row in enumerate(df.itertuples(index=False)):
        row = row._asdict()
        line = f"{where}, data row {i + 1}"
        oid = str(row[C.OBSERVABLE_ID])
        if oid not in observables:
            raise ValueError(f"{line}: observableId {oid!r} is not in the observables table; known: {sorted(observables)}.")
        time = float(row[C.TIME])
        if not time >= 0:
            raise refuse(f"a measurement at time {time!r} before the start t=0", line)
        pre = row.get(C.PREEQUILIBRATION_CONDITION_ID)
        pre = None if petab.is_empty(pre) else str(pre)
        obs = observables[oid]
        out.append(Measurement(
            i, oid, pre, str(row[C.SIMULATION_CONDITION_ID]), time, float(row[C.MEASUREMENT]),
            _overrides(row.get(C.OBSERVABLE_PARAMETERS), obs.observable_placeholders, "observableParameters", line),
            _overrides(row.get(C.NOISE_PARAMETERS), obs.noise_placeholders, "noiseParameters", line),
        ))
    return out


def _conditions(df, where: str) -> dict[str, dict]:
    """The condition table: each condition's value sources by column (sorted by kind in :func:`split_conditions`)."""
    out = {}
    for cid, row in df.iterrows():
        cells = {str(col): row[col] for col in df.columns if col != C.CONDITION_NAME}
        out[str(cid)] = {
            col: (math.nan if petab.is_empty(value) else source(value, f"{where}, condition {cid!r}, column {col!r}"))
            for col, value in cells.items()
        }
    return out


def split_conditions(tables: Tables, parameter_ids, species_ids, state_ids) -> dict[str, Condition]:
    """The conditions with each column sorted into model inputs ``p`` or initial values of states.

    Parameters and compartments, and species that are no state variables (constant or boundary
    species, set through ``p``), are inputs; species that are states get initial-value overrides
    (NaN: keep). A column that is no model id, or a NaN for a parameter or compartment (the
    specification gives NaN a meaning for species only), is refused naming the file, condition
    and column.
    """
    where = tables.condition_file
    parameter_ids, species_ids, state_ids = set(parameter_ids), set(species_ids), set(state_ids)
    out = {}
    for cid, cells in tables.conditions.items():
        params, species = {}, {}
        for col, value in cells.items():
            empty = isinstance(value, float) and math.isnan(value)
            if col in species_ids and col in state_ids:
                species[col] = value
            elif col in species_ids:
                if not empty:
                    params[col] = value
            elif col in parameter_ids:
                if empty:
                    raise refuse(f"an empty (NaN) value for parameter or compartment {col!r} in condition {cid!r}",
                                 where, "Give a number or a parameter id.")
                params[col] = value
            else:
                raise ValueError(
                    f"{where}: condition table column {col!r} is not a parameter, compartment or species of the "
                    f"model {tables.sbml_path}; columns must be model ids (PEtab v1, condition table)."
                )
        out[cid] = Condition(cid, params, species)
    return out


def scale(value: float, scale_name: str) -> float:
    """``value`` (linear) on the parameter scale ``scale_name`` (PEtab v1, ``parameterScale``)."""
    if scale_name == "log":
        return float(np.log(value))
    if scale_name == "log10":
        return float(np.log10(value))
    return value
