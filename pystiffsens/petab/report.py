"""The report of a PEtab model: what its gradient looks like to every solver and sensitivity.

``pystiffsens petab MODEL.yaml --out DIR`` (:func:`write_report`) writes, for the estimated
parameters at their nominal values,

* ``gradients_at_nominal.csv`` and ``gradient_agreement.png``: the gradient of the negative
  log-likelihood from every solver and sensitivity side by side, each entry's relative
  distance from the median over the methods that succeeded (where they disagree, and by how
  much);
* ``stiffness.csv`` and ``stiffness.png``: the stiffness proxies along each simulation
  condition's solution (:func:`pystiffsens.stiffness.stiffness_along_solution`);
* ``stiffness_by_parameter.csv``: how much each model parameter, scaled by 10, raises the
  spectral radius along the first condition's solution
  (:func:`pystiffsens.stiffness.stiffness_by_parameter`); the entries that set it are the
  stiffness knobs;
* ``sweep/``: a decay sweep of those knobs (their value times 1 … ``10**decades``) for every
  solver and sensitivity, with fitted exponents beside the theory, as
  :func:`pystiffsens.report` writes it for the built-in problems;
* ``summary.md``: what the files hold, and what they leave out.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .. import sensitivity as sensitivities_catalog
from .. import solvers as solvers_catalog
from ..api import solve
from ..stiffness import stiffness_along_solution, stiffness_by_parameter
from ..study import fit_decay, report, sweep
from ..study.resume import prepare_out_dir
from ..theory.asymptotics import format_exponent

SOLVERS = ("Rodas5P", "KenCarp4", "FBDF")
"""Default solvers of the report: a Rosenbrock, an ESDIRK and a BDF method."""

SENSITIVITIES = ("ForwardDiffSensitivity", "ReverseDiffAdjoint", "InterpolatingAdjoint")
"""Default sensitivities: forward mode, the discrete adjoint and a continuous adjoint."""

KNOB_ELASTICITY = 0.5
"""A parameter is a stiffness knob when scaling it by 10 raises the spectral radius by at least
``10**KNOB_ELASTICITY`` (about 3.2x)."""

MAX_KNOBS = 2
"""Knobs swept when none are named: the two with the largest elasticity."""


def gradients_at_nominal(problem, solvers=SOLVERS, sensitivities=SENSITIVITIES, *, rtol=1e-8, atol=1e-10,
                         progress=True) -> pd.DataFrame:
    """The gradient of ``problem``'s nllh at its nominal point from every solver and sensitivity.

    One row per (solver, sensitivity, estimated parameter): ``grad`` (NaN where a solve
    failed), ``status`` (the SciML word of the first failed simulation, else ``Success``),
    ``median`` (over the methods with a finite value), ``relative_deviation``
    ``|grad - median| / |median|`` (0 where they are equal, also at 0; NaN for a failed method),
    ``seconds`` (the second call's time; the first compiles).
    """
    pairs = [(s, a) for s in solvers for a in sensitivities]
    rows = []
    for solver, algorithm in tqdm(pairs, desc="gradients at nominal", disable=not progress):
        problem.evaluate(gradient=True, solver=solver, sensitivity=algorithm, rtol=rtol, atol=atol)  # compiles
        start = time.perf_counter()
        result = problem.evaluate(gradient=True, solver=solver, sensitivity=algorithm, rtol=rtol, atol=atol)
        seconds = time.perf_counter() - start
        rows += [{"solver": solver, "sensitivity": algorithm, "param": pid, "grad": value,
                  "status": result.status.name, "seconds": seconds} for pid, value in result.gradient.items()]
    frame = pd.DataFrame(rows, columns=["solver", "sensitivity", "param", "grad", "status", "seconds"])
    finite = frame["grad"].where(np.isfinite(frame["grad"]))
    frame["median"] = finite.groupby(frame["param"]).transform("median")
    distance = np.abs(frame["grad"] - frame["median"])
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero median: 0 where the method gives 0 too
        frame["relative_deviation"] = np.where(distance == 0.0, 0.0, distance / np.abs(frame["median"]))
    return frame


def stiffness_along_conditions(problem, solver="Rodas5P", *, rtol=1e-8, atol=1e-10, progress=True):
    """Stiffness proxies along every simulation condition's solution, with a ``condition`` column.

    Returns ``(frame, skipped)``: ``skipped`` maps a condition that cannot be written as a plain
    problem (events, steady-state measurements, several preequilibrations) or whose solve failed to the reason.
    """
    frames, skipped = [], {}
    for condition in tqdm(problem.conditions, desc="stiffness along conditions", disable=not progress):
        try:
            plain = problem.problem(condition)
        except ValueError as error:
            skipped[condition] = str(error)
            continue
        solution = solve(plain, solver, rtol=rtol, atol=atol)
        if str(solution.status) != "Success":
            skipped[condition] = f"{solver} returned {solution.status}"
            continue
        frames.append(stiffness_along_solution(plain, solution).assign(condition=condition))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["condition"])
    return frame, skipped


def choose_knobs(by_parameter: pd.DataFrame, knobs=None) -> list[str]:
    """The parameters to sweep: ``knobs`` if given (checked), else the (at most :data:`MAX_KNOBS`)
    entries with elasticity >= :data:`KNOB_ELASTICITY`, largest first."""
    if knobs:
        unknown = [k for k in knobs if k not in set(by_parameter["param"])]
        if unknown:
            raise ValueError(f"knobs={unknown!r} are not model parameters; valid: {sorted(by_parameter['param'])}.")
        return list(knobs)
    strong = by_parameter[by_parameter["elasticity"] >= KNOB_ELASTICITY]
    return list(strong["param"].iloc[:MAX_KNOBS])


def write_report(problem, out_dir, *, solvers=SOLVERS, sensitivities=SENSITIVITIES, rtol=1e-8, atol=1e-10,
                 knobs=None, decades: int = 3, points: int = 4, progress: bool = True,
                 command: str | None = None) -> dict[str, Path]:
    """Write the report of a loaded PEtab problem (:func:`pystiffsens.petab.load`) into ``out_dir``.

    ``solvers``/``sensitivities``: names or objects (default :data:`SOLVERS`,
    :data:`SENSITIVITIES`); ``knobs``: model parameter ids to sweep (default: found by
    :func:`choose_knobs`); each is swept over its nominal value times ``points`` log-spaced
    factors from 1 to ``10**decades``. Returns the written paths by name.
    """
    solvers = [solvers_catalog.get(s).name for s in solvers]
    sensitivities = [sensitivities_catalog.get(a).name for a in sensitivities]
    if not (isinstance(decades, int) and decades >= 1 and isinstance(points, int) and points >= 3):
        raise ValueError(f"decades={decades!r} and points={points!r} must be integers >= 1 and >= 3 (a fit needs "
                         "three stiffness values).")
    out = prepare_out_dir(out_dir)
    paths = {name: out / name for name in ("gradients_at_nominal.csv", "gradient_agreement.png", "stiffness.csv",
                                           "stiffness.png", "stiffness_by_parameter.csv", "summary.md")}
    gradients = gradients_at_nominal(problem, solvers, sensitivities, rtol=rtol, atol=atol, progress=progress)
    gradients.to_csv(paths["gradients_at_nominal.csv"], index=False)
    _plot_agreement(gradients, paths["gradient_agreement.png"])
    stiffness, skipped = stiffness_along_conditions(problem, solvers[0], rtol=rtol, atol=atol, progress=progress)
    stiffness.to_csv(paths["stiffness.csv"], index=False)
    _plot_stiffness(stiffness, paths["stiffness.png"])
    first = next((c for c in problem.conditions if c not in skipped), None)
    by_parameter, sweep_fits, chosen = pd.DataFrame(), pd.DataFrame(), []
    if first is not None:
        plain = problem.problem(first)
        by_parameter = stiffness_by_parameter(plain, solver=solvers[0], rtol=rtol, atol=atol)
        by_parameter.to_csv(paths["stiffness_by_parameter.csv"], index=False)
        chosen = choose_knobs(by_parameter, knobs)
        frames, swept = [], []
        for knob in chosen:
            knobbed = plain.replace(stiffness=knob, name=f"{plain.label} ({knob})")
            values = float(plain.params[knob]) * np.geomspace(1.0, 10.0**decades, points)
            frames.append(sweep(knobbed, values, solvers, sensitivities, rtol=rtol, atol=atol, progress=progress))
            swept.append(knobbed)
        if frames:
            frame = pd.concat(frames, ignore_index=True)
            sweep_fits = fit_decay(frame)
            for name, path in report(frame, out / "sweep", fits=sweep_fits, problems=swept).items():
                paths[f"sweep:{name}"] = path
    paths["summary.md"].write_text(_summary(problem, gradients, stiffness, skipped, first, by_parameter, chosen,
                                            sweep_fits, rtol, atol, command))
    return {name: path for name, path in paths.items() if path.exists()}


def _plot_agreement(gradients: pd.DataFrame, path: Path) -> None:
    """Heat map of log10 relative deviation from the median, parameter x method."""
    table = gradients.assign(method=gradients["solver"] + " / " + gradients["sensitivity"]).pivot(
        index="param", columns="method", values="relative_deviation")
    table = table.reindex(index=list(dict.fromkeys(gradients["param"])))
    shown = np.log10(np.clip(table.to_numpy(dtype=np.float64), 1e-16, None))
    fig = Figure(figsize=(1.2 + 0.9 * table.shape[1], 1.5 + 0.3 * table.shape[0]))
    ax = fig.subplots()
    image = ax.imshow(shown, aspect="auto", cmap="viridis", vmin=-16, vmax=0)
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=8)
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=np.float64)):
        if not np.isfinite(value):
            ax.text(j, i, "failed", ha="center", va="center", color="red", fontsize=7)
    fig.colorbar(image, ax=ax, label="log10 |grad - median| / |median| (clipped at 1e-16)")
    ax.set_title("Gradient at the nominal point: distance from the median over methods", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _plot_stiffness(stiffness: pd.DataFrame, path: Path) -> None:
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for condition, rows in stiffness.groupby("condition", sort=False):
        for ax, column in zip(axes, ("stiffness_ratio", "spectral_radius_eig")):
            ax.semilogy(rows["t"], rows[column], label=str(condition))
    for ax, label in zip(axes, ("stiffness ratio max|Re l| / min|Re l|", "spectral radius max |l|")):
        ax.set_xlabel("t")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    if stiffness["condition"].nunique() <= 12:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _summary(problem, gradients, stiffness, skipped, first, by_parameter, chosen, sweep_fits, rtol, atol,
             command) -> str:
    n_methods = gradients.groupby(["solver", "sensitivity"]).ngroups
    failed = gradients[~np.isfinite(gradients["grad"])][["solver", "sensitivity", "status"]].drop_duplicates()
    lines = [f"# {problem.name}: gradients, stiffness and decay", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        f"{_count(len(problem.estimated), 'estimated parameter')}, "
        f"{_count(len(problem.conditions), 'simulation condition')}, {_count(len(problem.model.state_ids), 'state')}; "
        f"rtol {rtol:g}, atol {atol:g}.",
        "",
        "## Gradient at the nominal point, method by method",
        "",
        f"{n_methods} solver/sensitivity pairs (`gradients_at_nominal.csv`, `gradient_agreement.png`). "
        "Largest relative distance from the median over the methods, per parameter:",
        "",
        "| parameter | median gradient | largest relative deviation | by |",
        "|---|---|---|---|",
    ]
    for param, rows in gradients.groupby("param", sort=False):
        deviations = rows["relative_deviation"].to_numpy(dtype=np.float64)
        worst = rows.iloc[int(np.nanargmax(deviations))] if np.isfinite(deviations).any() else None
        lines.append(f"| {param} | {rows['median'].iloc[0]:.6g} | "
                     + (f"{worst['relative_deviation']:.2g} | {worst['solver']} / {worst['sensitivity']} |"
                        if worst is not None else "n/a | |"))
    if not failed.empty:
        lines += ["", "Failed (NaN gradient): " + ", ".join(f"{r.solver} / {r.sensitivity} ({r.status})"
                                                            for r in failed.itertuples()) + "."]
    lines += ["", "## Stiffness along each condition", ""]
    if not stiffness.empty:
        peak = stiffness.groupby("condition", sort=False)[["stiffness_ratio", "spectral_radius_eig"]].max()
        lines += ["| condition | largest stiffness ratio | largest spectral radius |", "|---|---|---|"]
        lines += [f"| {c} | {r.stiffness_ratio:.3g} | {r.spectral_radius_eig:.3g} |" for c, r in peak.iterrows()]
    for condition, reason in skipped.items():
        lines.append(f"\nLeft out: condition {condition}: {reason}")
    lines += ["", "## Which parameters set the stiffness", ""]
    if by_parameter.empty:
        lines.append("No condition could be written as a plain problem, so no parameter was tested.")
    else:
        lines += [f"Condition {first}: the spectral radius along the solution when one parameter is scaled by 10 "
                  "(`stiffness_by_parameter.csv`, first five):", "",
                  "| parameter | value | elasticity |", "|---|---|---|"]
        lines += [f"| {r.param} | {r.value:.4g} | {r.elasticity:.3f} |" for r in by_parameter.head(5).itertuples()]
        lines += ["", f"Swept: {', '.join(chosen) if chosen else 'none'}"
                  + ("" if chosen else f" (no parameter reached elasticity {KNOB_ELASTICITY}; name one with --knob)")
                  + "."]
    if not sweep_fits.empty:
        own = [problem.endswith(f"({knob})") for problem, knob in zip(sweep_fits["problem"], sweep_fits["param"])]
        knob_fits = sweep_fits[own]
        lines += ["", "## Decay of each knob's own gradient (full report in `sweep/summary.md`)", "",
                  "| knob | solver | sensitivity | fitted exponent | theory |", "|---|---|---|---|---|"]
        lines += [f"| {r.param} | {r.solver} | {r.sensitivity} | {format_exponent(r.exponent)} | "
                  f"{format_exponent(r.theory_exponent)} |" for r in knob_fits.itertuples()]
    return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
