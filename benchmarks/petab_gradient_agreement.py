"""How far each solver's and sensitivity's gradient of a PEtab problem is from a tight reference.

    python benchmarks/petab_gradient_agreement.py tests/data/petab/Zheng_PNAS2012/Zheng_PNAS2012.yaml

The reference is ``--reference`` (a solver and a sensitivity) at ``--reference-tol`` (rtol, atol);
a reference with a failed simulation stops the script, naming them. Every pair of ``--solvers``
and ``--sensitivities`` runs at each of ``--tols``. Each row
gives the relative L2 distance of its gradient (by estimated parameter, on their scales) from the
reference's, the parameter farthest from it, the status, and the process's memory mappings after
the call (``/proc/self/maps``; each compiled program adds its own: ``pystiffsens/_mappings.py``).
Prints a Markdown table and writes ``--out`` (CSV, rewritten after each row). Accuracy only: the
seconds column includes compilation.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common
import numpy as np

import pystiffsens as pss

RESULTS = Path(__file__).parent / "results"


def _mappings() -> int | None:
    """The process's memory mappings now (None without ``/proc``). ``pystiffsens._mappings.count`` reads the same;
    this copy lets the script run on revisions that predate that module (for before/after comparisons)."""
    try:
        with open("/proc/self/maps", "rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return None


def _tolerances(text: str) -> tuple[float, float]:
    rtol, atol = (float(x) for x in text.split(","))
    return rtol, atol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("yaml", type=Path, help="a PEtab problem's YAML file")
    parser.add_argument("--solvers", nargs="+", default=["Rodas5P", "FBDF", "KenCarp4"])
    parser.add_argument("--sensitivities", nargs="+",
                        default=["ForwardDiffSensitivity", "ReverseDiffAdjoint", "InterpolatingAdjoint", "GaussAdjoint"])
    parser.add_argument("--tols", nargs="+", type=_tolerances, default=[(1e-8, 1e-10), (1e-10, 1e-12)],
                        help="rtol,atol pairs")
    parser.add_argument("--reference", nargs=2, default=["Rodas5P", "ForwardDiffSensitivity"],
                        metavar=("SOLVER", "SENSITIVITY"))
    parser.add_argument("--reference-tol", type=_tolerances, default=(1e-10, 1e-12), help="rtol,atol")
    parser.add_argument("--out", type=Path, default=RESULTS / "petab_gradient_agreement.csv")
    args = parser.parse_args()

    problem = pss.petab.load(args.yaml)
    solver, sensitivity = args.reference
    rtol, atol = args.reference_tol
    _common.progress(f"{problem.name}: reference {solver} + {sensitivity} at rtol {rtol:g}, atol {atol:g}")
    reference = problem.evaluate(gradient=True, solver=solver, sensitivity=sensitivity, rtol=rtol, atol=atol)
    if not reference.success:  # every row would be NaN
        failed = [f"{name}: {code.name}" for name, code in reference.failed.items()]
        listed = ", ".join(failed[:3]) + (", ..." if len(failed) > 3 else "")
        raise SystemExit(f"{problem.name}: the reference ({solver} + {sensitivity} at rtol {rtol:g}, atol {atol:g}) "
                         f"failed in {len(failed)} simulation(s) ({listed}); choose another --reference or "
                         "--reference-tol.")
    ref = np.array([reference.gradient[pid] for pid in problem.estimated])
    rows = []
    for solver in args.solvers:
        for sensitivity in args.sensitivities:
            for rtol, atol in args.tols:
                _common.progress(f"{solver} + {sensitivity}, rtol {rtol:g}")
                start = time.perf_counter()
                result = problem.evaluate(gradient=True, solver=solver, sensitivity=sensitivity, rtol=rtol, atol=atol)
                seconds = time.perf_counter() - start
                grad = np.array([result.gradient[pid] for pid in problem.estimated])
                diff = np.abs(grad - ref)
                worst = int(np.nanargmax(diff)) if np.any(np.isfinite(diff)) else 0
                rows.append(dict(model=problem.name, solver=solver, sensitivity=sensitivity, rtol=rtol, atol=atol,
                                 status=result.status.name, rel_l2=float(np.linalg.norm(grad - ref) / np.linalg.norm(ref)),
                                 farthest=problem.estimated[worst], its_value=float(grad[worst]),
                                 its_reference=float(ref[worst]), seconds=round(seconds, 2),
                                 mappings=_mappings()))
                _common.write_rows(str(args.out), rows)  # after each row: a process that dies keeps what it did
    headers = list(rows[0])
    print(_common.markdown_table(headers, [[_common.fmt(r[h]) for h in headers] for r in rows]))


if __name__ == "__main__":
    main()
