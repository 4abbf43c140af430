"""The ``pystiffsens`` command line: one subcommand module per topic.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from . import _x64

_SUBCOMMAND_MODULES = (
    "pystiffsens.study._cli",
    "pystiffsens.theory._cli",
    "pystiffsens.resnet._cli",
    "pystiffsens.node._cli",
    "pystiffsens.petab._cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pystiffsens",
        description="Measure how parameter gradients of stiff ODEs vanish as stiffness grows.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in _SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""


@_x64.float64
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError) as error:  # bad input; a missing GPU or Julia runtime
        print(f"pystiffsens {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the disk, after the up-front checks of --out
        print(f"pystiffsens {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pystiffsens {args.command}: interrupted. {_kept(args)}", file=sys.stderr)
        return INTERRUPTED


def _kept(args) -> str:
    """What an interrupted command leaves in its ``--out``."""
    out = getattr(args, "out", None)
    if out is None:
        return "Nothing was written."
    checkpoint = Path(out) / "gradients.csv"
    if args.command not in ("sweep", "demo"):
        return f"Files written so far are kept in {out}."
    if not checkpoint.exists():
        return f"No gradient rows had been finished; nothing was kept in {out}."
    try:
        with open(checkpoint, "rb") as file:
            n_rows = max(sum(1 for _ in file) - 1, 0)
    except OSError:
        return f"Files written so far are kept in {out}."
    return (
        f"{n_rows} gradient rows are kept in {checkpoint}; rerun the same command to resume "
        "(only the missing rows are computed)."
    )


if __name__ == "__main__":
    sys.exit(main())
