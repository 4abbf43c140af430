"""The ``sweep``, ``demo`` and ``problems`` subcommands of the ``pystiffsens`` command line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import backends, problems, solvers
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
    sweep.add_argument("--stiffness", required=True, help=f"stiffness grid: {_GRID_HELP} (positive values)")
    sweep.add_argument("--out", required=True, type=Path, help="output directory (also the resume checkpoint)")
    sweep.add_argument("--backend", choices=backends.names(), default="jax")
    sweep.add_argument("--device", choices=DEVICES, default="cpu")
    sweep.add_argument("--rtol", type=float, default=1e-6)
    sweep.add_argument("--atol", type=float, default=1e-8)
    sweep.add_argument(
        "--dt", type=float, default=None,
        help=f"step of the fixed-step solvers ({', '.join(solvers.fixed_step_names())}); adaptive solvers keep "
        "adaptive steps",
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
    _accept_negative_values(sweep)

    demo = subparsers.add_parser(
        "demo",
        help="the vanishing-gradient study of the README (a few minutes on 2 cores)",
        description="Sweep dahlquist, prothero_robinson and robertson with Rodas5P, KenCarp4, FBDF and the "
        "fixed-step references, forward and adjoint, and write the full report to --out.",
    )
    demo.add_argument("--out", required=True, type=Path, help="output directory")
    demo.add_argument(
        "--solvers", default=None, metavar="A,B,...",
        help="comma-separated solvers instead of the demo's (adaptive ones sweep every problem, fixed-step ones "
        "the problems with a dt), e.g. Rosenbrock23,TRBDF2,Kvaerno5",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    demo.set_defaults(func=_demo)

    listing = subparsers.add_parser("problems", help="list the built-in problems and their stiffness knobs")
    listing.set_defaults(func=_problems)


def parse_grid(text: str) -> np.ndarray:
    """The stiffness grid ``START:STOP:NUM``; ``ValueError`` naming what is wrong and the expected form.

    Stiffness values must be positive and finite (a sweep sets the knob to each value;
    :func:`~pystiffsens.study.sweep.check_stiffness` refuses the others), so ``0 < START < STOP``.
    """
    form = f"{_GRID_HELP}, with 0 < START < STOP and NUM >= 2"
    match = re.fullmatch(r"\s*([^:]+):([^:]+):([^:]+)\s*", text)
    try:
        if match is None or not re.fullmatch(r"\s*\d+\s*", match[3]):
            raise ValueError
        start, stop, num = float(match[1]), float(match[2]), int(match[3])
    except ValueError:
        raise ValueError(f"--stiffness {text!r} is malformed: {form}.") from None
    for name, value in (("START", start), ("STOP", stop)):
        if not (0 < value < np.inf):
            raise ValueError(
                f"--stiffness {text!r}: {name}={value:g} must be positive and finite: stiffness values are "
                f"positive (the problem's stiffness knob is set to each value). {form}."
            )
    if not start < stop:
        raise ValueError(f"--stiffness {text!r}: START={start:g} must be below STOP={stop:g}. {form}.")
    if num < 2:
        raise ValueError(f"--stiffness {text!r}: NUM={num} must be >= 2. {form}.")
    return np.geomspace(start, stop, num)


def knob_options(problem, options: dict) -> list[str]:
    """The names in ``options`` that are parameters the problem's stiffness knob sets
    (:meth:`~pystiffsens.Problem.knob_entries`; a sweep sets those to each stiffness value, so
    such an option would be overwritten). The built-ins' options are named like their parameters."""
    entries = problem.knob_entries()
    return [name for name in options if name in entries]


def _refuse_knob_options(problem, items: list[str], options: dict) -> None:
    """``ValueError`` for an ``--option`` that sets the stiffness knob (the sweep would overwrite it)."""
    overwritten = knob_options(problem, options)
    if not overwritten:
        return
    name = overwritten[0]
    given = next(item for item in items if item.partition("=")[0] == name)
    value = options[name]
    example = f"{value:g}:{value * 1e3:g}:4" if value > 0 else "1e1:1e4:4"
    raise ValueError(
        f"--option {given} cannot be used: {name!r} is the stiffness knob of problem {problem.label!r}, which the "
        "sweep sets to each stiffness value, overwriting the option. Give the values it takes with --stiffness "
        f"START:STOP:NUM instead (e.g. --stiffness {example}) and drop --option {given}."
    )


def _accept_negative_values(parser) -> None:
    """Let an option's value start with ``-`` followed by a digit (``--stiffness -1:1e3:3``).

    argparse takes such a value for an option (``expected one argument``) unless it is a plain
    negative number; this parser has no options that look like negative numbers, so a value
    like ``-1:1e3:3`` reaches :func:`parse_grid`, which says what is wrong with it.
    """
    if hasattr(parser, "_negative_number_matcher"):
        parser._negative_number_matcher = re.compile(r"^-\.?\d")


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

    options = parse_options(args.option)
    problem = problems.get(args.problem, **options)
    _refuse_knob_options(problem, args.option, options)
    grid = parse_grid(args.stiffness)
    with client_from_options(args.scheduler, args.workers) as scheduler:
        frame = sweep(
            problem, grid, _names(args.solvers), _names(args.sensitivities),
            backend=args.backend, device=args.device, rtol=args.rtol, atol=args.atol, dt=args.dt,
            adaptive=args.adaptive, max_steps=args.max_steps, progress=not args.no_progress, out_dir=args.out,
            scheduler=scheduler, chunk_size=args.chunk_size,
        )
    paths = report(frame, args.out)
    _print_done(paths)
    return 0


def _demo(args) -> int:
    from .demo import run

    kwargs = {}
    if args.solvers is not None:
        chosen = [solvers.get(name.strip()) for name in args.solvers.split(",") if name.strip()]
        kwargs = dict(adaptive=[s.name for s in chosen if s.adaptive], fixed=[s.name for s in chosen if not s.adaptive])
    _print_done(run(args.out, progress=not args.no_progress, **kwargs))
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
