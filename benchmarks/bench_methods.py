"""Per-method decay exponents: the theory from the coefficients, one step on Dahlquist, adaptive ROBER.

Run: ``python benchmarks/bench_methods.py`` (about 3 minutes on 2 cores with the catalog of
this revision). For every solver of ``pss.solvers`` (or ``--solvers``):

* **theory**: the exponent ``e`` of ``|R'(z)| ~ C |z|^e`` from the method's stability function
  (``pss.theory.stability_function(solver).decay_exponent``); none for FBDF, whose order varies.
* **one step**: ``pss.sweep`` of ``dahlquist`` (``y' = -lam y`` on [0, 1], loss ``y(1)``) over
  ``lam`` in 1e2 … 1e6 with one fixed step ``dt = 1`` (``adaptive=False``, forward mode), and
  the exponent of ``|dL/dlam|`` fitted by ``pss.study.fit_decay``. One step gives
  ``dL/dlam = -R'(-lam)``, so this measures the theory through the whole solver; the exact
  sensitivity ``-e^-lam`` decays faster than any power, and the column beside it gives the largest
  relative distance of the one-step gradient from it (where ``R = e^z`` it is rounding, and the
  gradient underflows to zero with the exact one, leaving no power law to fit).
* **adaptive ROBER**: ``pss.sweep`` of ``robertson`` on [0, 1] over the fast rate ``k2`` in
  3e5 … 3e9 (the demo's grid, 7 values) with adaptive steps at rtol 1e-6, atol 1e-8, forward
  mode; the fitted exponent of ``|dL/dk2|`` (no closed form, so no exact exponent).

* **IMEX** (unless ``--no-imex``): KenCarp4 on ``stiff_neural_ode`` (2 states, hidden width 8)
  with the network explicit (``split=True``, a :class:`~pystiffsens.SplitRHS`) against the whole
  right-hand side implicit, over ``lam_fast`` in 1e1 … 1e5 adaptive (rtol 1e-8, atol 1e-10) and in
  1e2 … 1e6 with ten fixed steps (``dt = 0.1``): the fitted exponent of every parameter entry
  (those that are not flat) and the steps taken.

Prints Markdown tables on stdout and progress on stderr; writes ``results/methods.csv`` and
``results/imex.csv``.
Work-precision of the same methods against CVODES and pydiffsol:
``python benchmarks/bench_peers.py --solvers ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

import pystiffsens as pss  # noqa: E402
from pystiffsens.study import fit_decay  # noqa: E402
from pystiffsens.theory import format_exponent  # noqa: E402

RESULTS = os.path.join(C.ROOT, "benchmarks", "results")
ONE_STEP_GRID = np.geomspace(1e2, 1e6, 9)
ROBER_GRID = np.geomspace(3e5, 3e9, 7)


def _theory(solver) -> float:
    try:
        return float(pss.theory.stability_function(solver).decay_exponent)
    except ValueError:  # FBDF: no single stability function
        return float("nan")


def _exact_distance(frame) -> float:
    """Largest relative distance of the gradient from the exact one over the rows where the exact one is not zero."""
    rows = frame[frame["exact_grad"] != 0.0]
    return float(np.max(np.abs(rows["grad"] / rows["exact_grad"] - 1.0)))


def _fit(frame, entry) -> tuple[float, float, int]:
    row = fit_decay(frame).set_index("param").loc[entry]
    return float(row["exponent"]), float(row["exponent_se"]), int(row["n_failed"])


#: Groups of stiff_neural_ode's entries: the knob, the weights that read the fast state y2, those
#: that write it, and the rest.
IMEX_GROUPS = {
    "lam_fast": lambda name: name == "lam_fast",
    "W1[:, 1] (read y2)": lambda name: name.startswith("W1[") and name.endswith(",1]"),
    "W2[1, :], b2[1] (write y2)": lambda name: name.startswith("W2[1,") or name == "b2[1]",
}
IMEX_GROUPS["the other entries"] = lambda name, named=tuple(IMEX_GROUPS.values()): not any(m(name) for m in named)
IMEX_SETTINGS = {
    "adaptive, rtol 1e-8": (np.geomspace(1e1, 1e5, 9), dict(rtol=1e-8, atol=1e-10)),
    "dt = 0.1 (10 steps)": (np.geomspace(1e2, 1e6, 9), dict(dt=0.1, adaptive=False)),
}


def imex_rows() -> list[dict]:
    """Fitted exponents of KenCarp4 with the network explicit (IMEX) and implicit, per parameter entry."""
    rows = []
    for setting, (grid, options) in IMEX_SETTINGS.items():
        fits, steps = {}, {}
        for split in (False, True):
            C.progress(f"IMEX: stiff_neural_ode split={split}, {setting}")
            frame = pss.sweep(pss.problems.get("stiff_neural_ode", split=split), grid, ["KenCarp4"],
                              ["ForwardDiffSensitivity"], progress=False, **options)
            fits[split] = fit_decay(frame).set_index("param")
            steps[split] = frame.groupby("stiffness")["n_steps"].first().to_numpy()
        for entry in fits[False].index:
            implicit, imex = fits[False].loc[entry], fits[True].loc[entry]
            rows.append(dict(setting=setting, param=entry, implicit_exponent=float(implicit["exponent"]),
                             imex_exponent=float(imex["exponent"]), implicit_r2=float(implicit["r2"]),
                             imex_r2=float(imex["r2"]), implicit_max_steps=int(steps[False].max()),
                             imex_max_steps=int(steps[True].max())))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--solvers", nargs="+", default=pss.solvers.names(), help="default: every solver of pss.solvers")
    ap.add_argument("--no-imex", action="store_true", help="skip the IMEX comparison")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    print("# Decay exponents per method\n")
    print("\n".join(C.machine_info()))
    rows = []
    for name in args.solvers:
        solver = pss.solvers.get(name)
        C.progress(f"{solver.name}: one step on dahlquist")
        one = pss.sweep("dahlquist", ONE_STEP_GRID, [solver.name], ["ForwardDiffSensitivity"], dt=1.0, adaptive=False,
                        progress=False)
        one_step, one_step_se, one_failed = _fit(one, "lam")
        one_step_distance = _exact_distance(one)
        rober, rober_se, rober_failed = (float("nan"), float("nan"), 0)
        if solver.adaptive:
            C.progress(f"{solver.name}: adaptive robertson")
            frame = pss.sweep(pss.problems.get("robertson", t_end=1.0), ROBER_GRID, [solver.name],
                              ["ForwardDiffSensitivity"], rtol=1e-6, atol=1e-8, progress=False)
            rober, rober_se, rober_failed = _fit(frame, "k2")
        rows.append(dict(solver=solver.name, family=type(solver).__name__, order=solver.order,
                         theory_exponent=_theory(solver), one_step_exponent=one_step, one_step_se=one_step_se,
                         one_step_failed=one_failed, one_step_exact_distance=one_step_distance,
                         rober_exponent=rober, rober_se=rober_se,
                         rober_failed=rober_failed))
    C.write_rows(os.path.join(RESULTS, "methods.csv"), rows)
    headers = ["method", "family", "order", "theory e", "one step (Dahlquist, dt = 1)", "one step vs exact",
               "adaptive ROBER (k2)"]
    table = [[r["solver"], r["family"], r["order"], format_exponent(r["theory_exponent"]),
              ("no power law" if np.isnan(r["one_step_exponent"]) else f"{r['one_step_exponent']:.3f} ± {r['one_step_se']:.3f}")
              + (f" ({r['one_step_failed']} failed)" if r["one_step_failed"] else ""),
              f"{r['one_step_exact_distance']:.1e}",
              ("–" if np.isnan(r["rober_exponent"]) else f"{r['rober_exponent']:.3f} ± {r['rober_se']:.3f}")
              + (f" ({r['rober_failed']} failed)" if r["rober_failed"] else "")] for r in rows]
    print()
    print(C.markdown_table(headers, table))
    if args.no_imex:
        return
    rows = imex_rows()
    C.write_rows(os.path.join(RESULTS, "imex.csv"), rows)
    print("\n## KenCarp4 on stiff_neural_ode: network implicit or explicit (IMEX)\n")
    print("Median fitted exponent over each group of entries (every entry: results/imex.csv); the fast "
          "state is y2.\n")
    table = []
    for setting in IMEX_SETTINGS:
        here = [r for r in rows if r["setting"] == setting]
        for label, match in IMEX_GROUPS.items():
            group = [r for r in here if match(r["param"])]
            implicit = np.median([r["implicit_exponent"] for r in group])
            imex = np.median([r["imex_exponent"] for r in group])
            spread = max(abs(r["imex_exponent"] - r["implicit_exponent"]) for r in group)
            r2 = min(min(r["implicit_r2"], r["imex_r2"]) for r in group)
            table.append([setting, label, len(group), f"{implicit:.3f}", f"{imex:.3f}", f"{spread:.3f}", f"{r2:.2f}"])
        table.append([setting, "most steps over the grid", "", here[0]["implicit_max_steps"], here[0]["imex_max_steps"],
                      "", ""])
    print(C.markdown_table(["setting", "entries", "n", "implicit", "IMEX", "largest |difference|", "lowest r2"], table))


if __name__ == "__main__":
    main()
