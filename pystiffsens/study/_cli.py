"""The ``sweep``, ``demo`` and ``problems`` subcommands of the ``pystiffsens`` command line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import backends, problems
from ..device import DEVICES

_GRID_HELP = "START:STOP:NUM gives NUM log-spaced values from START to STOP, e.g. 1e1:1e6:11"


def register(subparsers) -> None:
    """Add the ``sweep``, ``demo`` and ``problems`` subcommands."""
    sweep = subparsers.add_parser(
        "sweep",
        help="gradients over a stiffness grid for solvers x sensitivities, with a report",
        description="Compute parameter gradients of a built-in problem over a stiffness grid for every "
        "solver and sensitivity method, and write gradients.csv, fits.csv, comparison.csv, plots and "
        "summary.md to --out. Rerunning with the same --out resumes: only missing rows are computed; rows of "
        "earlier sweeps into --out (other solvers, sensitivities, tolerances) are kept and reported too. "
        "Ctrl-C stops cleanly (exit code 130), keeping the rows finished so far.",
    )
    sweep.add_argument("--problem", required=True, help="built-in problem (see `pystiffsens problems`)")
    sweep.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE",
        help="problem option, e.g. t_end=40 (repeatable)",
    )
    sweep.add_argument("--solvers", default="Rodas5P", help="comma-separated solvers (default: Rodas5P)")
    sweep.add_argument(
        "--sensitivities", default="forward",
        help="comma-separated sensitivity methods, aliases forward/adjoint accepted (default: forward)",
    )
    sweep.add_argument("--stiffness", required=True, help=f"stiffness grid: {_GRID_HELP}")
    sweep.add_argument("--out", required=True, type=Path, help="output directory (also the resume checkpoint)")
    sweep.add_argument("--backend", choices=backends.names(), default="jax")
    sweep.add_argument("--device", choices=DEVICES, default="cpu")
    sweep.add_argument("--rtol", type=float, default=1e-6)
    sweep.add_argument("--atol", type=float, default=1e-8)
    sweep.add_argument(
        "--dt", type=float, default=None,
        help="step of the fixed-step solvers ImplicitEuler, Trapezoid, BDF2; adaptive solvers keep adaptive steps",
    )
    sweep.add_argument(
        "--no-adaptive", dest="adaptive", action="store_false",
        help="adaptive solvers too take fixed steps of --dt (SciML's adaptive=false)",
    )
    sweep.add_argument("--max-steps", type=int, default=100_000)
    sweep.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sweep.add_argument(
        "--scheduler", default=None, metavar="ADDRESS",
        help="run the batches on the dask.distributed scheduler at ADDRESS (e.g. tcp://HOST:8786); needs '.[dask]'",
    )
    sweep.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="run the batches on a new local dask cluster of N single-threaded worker processes",
    )
    sweep.add_argument(
        "--chunk-size", type=int, default=None, metavar="K",
        help="with --scheduler/--workers: stiffness values per task (default: the whole grid per solver/sensitivity)",
    )
    sweep.set_defaults(func=_sweep)

    demo = subparsers.add_parser(
        "demo",
        help="the vanishing-gradient study of the README (a few minutes on 2 cores)",
        description="Sweep dahlquist, prothero_robinson and robertson with Rodas5P, KenCarp4, FBDF and the "
        "fixed-step references, forward and adjoint, and write the full report to --out.",
    )
    demo.add_argument("--out", required=True, type=Path, help="output directory")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    demo.set_defaults(func=_demo)

    listing = subparsers.add_parser("problems", help="list the built-in problems and their stiffness knobs")
    listing.set_defaults(func=_problems)


def parse_grid(text: str) -> np.ndarray:
    """The stiffness grid ``START:STOP:NUM``; ``ValueError`` naming the expected form."""
    match = re.fullmatch(r"\s*([^:]+):([^:]+):(\d+)\s*", text)
    bad = ValueError(f"--stiffness {text!r} is malformed: {_GRID_HELP}, with 0 < START < STOP and NUM >= 2.")
    if match is None:
        raise bad
    try:
        start, stop = float(match[1]), float(match[2])
    except ValueError:
        raise bad from None
    num = int(match[3])
    if not (0 < start < stop < np.inf and num >= 2):
        raise bad
    return np.geomspace(start, stop, num)


def parse_options(items: list[str]) -> dict:
    """``NAME=VALUE`` problem options; integers stay integers, other values are floats."""
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"--option {item!r} must look like NAME=VALUE, e.g. t_end=40.")
        try:
            options[name] = int(value) if re.fullmatch(r"[+-]?\d+", value) else float(value)
        except ValueError:
            raise ValueError(f"--option {item!r}: {value!r} is not a number.") from None
    return options


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _sweep(args) -> int:
    from .distributed import client_from_options
    from .report import report
    from .sweep import sweep

    problem = problems.get(args.problem, **parse_options(args.option))
    with client_from_options(args.scheduler, args.workers) as scheduler:
        frame = sweep(
            problem, parse_grid(args.stiffness), _names(args.solvers), _names(args.sensitivities),
            backend=args.backend, device=args.device, rtol=args.rtol, atol=args.atol, dt=args.dt,
            adaptive=args.adaptive, max_steps=args.max_steps, progress=not args.no_progress, out_dir=args.out,
            scheduler=scheduler, chunk_size=args.chunk_size,
        )
    paths = report(frame, args.out)
    _print_done(paths)
    return 0


def _demo(args) -> int:
    from .demo import run

    _print_done(run(args.out, progress=not args.no_progress))
    return 0


def _problems(args) -> int:
    width = max(map(len, problems.names()))
    for name in problems.names():
        print(f"{name:<{width}}  {problems.describe(name)}")
    return 0


def _print_done(paths: dict) -> None:
    import pandas as pd

    comparison = pd.read_csv(paths["comparison"])
    print(comparison[["problem", "solver", "sensitivity", "exponent", "exponent_param", "n_failures", "n_values"]].to_string(index=False))
    print(f"Report: {paths['summary']}")
