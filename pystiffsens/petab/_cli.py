"""The ``petab`` subcommand of the ``pystiffsens`` command line."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .report import SENSITIVITIES, SOLVERS, write_report


def register(subparsers) -> None:
    """Add the ``petab`` subcommand."""
    parser = subparsers.add_parser(
        "petab",
        help="report on a PEtab model: its gradient by every method, its stiffness, a decay sweep",
        description="Load a PEtab v1 problem (SBML model and tables; needs pip install 'pystiffsens[petab]') and "
        "write to --out: the gradient of its negative log-likelihood at the nominal parameters from every solver "
        "and sensitivity side by side, the stiffness along each condition's solution, which parameters set the "
        "stiffness, and a decay sweep of those parameters with fitted exponents beside the theory.",
    )
    parser.add_argument("yaml", type=Path, help="the PEtab problem's YAML file")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--solvers", default=",".join(SOLVERS), help=f"comma-separated (default: {','.join(SOLVERS)})")
    parser.add_argument("--sensitivities", default=",".join(SENSITIVITIES),
                        help=f"comma-separated (default: {','.join(SENSITIVITIES)})")
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--atol", type=float, default=1e-10)
    parser.add_argument("--knob", action="append", default=None, metavar="PARAMETER",
                        help="model parameter to sweep (repeatable; default: the ones that set the stiffness)")
    parser.add_argument("--decades", type=int, default=3, help="sweep each knob from its value to 10**DECADES x it")
    parser.add_argument("--points", type=int, default=4, help="stiffness values per knob (>= 3)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    if not args.yaml.is_file():
        raise ValueError(f"{args.yaml} is not a file; give the PEtab problem's YAML file.")
    try:
        from . import load  # the optional dependencies load here, not when the parser is built
    except ModuleNotFoundError as error:
        raise RuntimeError(str(error)) from error
    problem = load(args.yaml)
    paths = write_report(
        problem, args.out, solvers=_names(args.solvers), sensitivities=_names(args.sensitivities), rtol=args.rtol,
        atol=args.atol, knobs=args.knob, decades=args.decades, points=args.points, progress=not args.no_progress,
        command=shlex.join(["pystiffsens", *sys.argv[1:]]),
    )
    print(f"Report of {problem.name} in {args.out}: {paths['summary.md']}")
    return 0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]
