"""``pystiffsens theory``: exponent table and stability plots for chosen methods."""

from __future__ import annotations

import argparse
from pathlib import Path

from .asymptotics import format_exponent
from .methods import method_names
from .plots import plot_stability
from .summary import summary

EXPONENT_COLUMNS = ("decay_exponent", "numerical_exponent")
"""Printed in words where ``-inf`` (exponential integrators); exponents.csv keeps the numbers."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "theory",
        help="stability functions, R'(z) decay exponents and stability checks",
        description=(
            "Write exponents.csv (exact and measured decay exponents of |R'(z)|, |R(inf)|, "
            "A-/L-stability, A(alpha) angle) and stability.png (|R| and |R'| against |z| "
            "with the |z|^-1 bound) for the chosen methods."
        ),
    )
    parser.add_argument(
        "--methods",
        default=",".join(method_names()),
        help=f"comma-separated method names (default: all of {', '.join(method_names())})",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    parser.add_argument("--zmax", type=float, default=1e6, help="largest |z| plotted (default 1e6)")
    parser.add_argument("--angle", type=float, default=0.0,
                        help="plot along z = -r exp(i angle), angle in degrees (default 0: negative real axis)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    if not methods:
        raise ValueError(f"--methods {args.methods!r} names no method; valid names: {method_names()}.")
    table = summary(methods)
    figure = plot_stability(methods, zmax=args.zmax, angle_deg=args.angle)
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "exponents.csv"
    png_path = args.out / "stability.png"
    table.to_csv(csv_path, index=False)
    figure.savefig(png_path, dpi=120)
    shown = table.assign(**{column: table[column].map(lambda value: format_exponent(value, ".6g")) for column in EXPONENT_COLUMNS})
    print(shown.to_string(index=False))
    print(f"wrote {csv_path} and {png_path}")
    return 0
