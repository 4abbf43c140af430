"""What a PEtab model's likelihood or gradient program is made of: its traced operations, by primitive.

    python benchmarks/petab_operations.py --collection Benchmark-Models-PEtab/Benchmark-Models \\
        --models Lang_PLOSComputBiol2024 [--sensitivity ReverseDiffAdjoint] [--top 12]

For each model: load it and trace (``jax.jit(...).trace``, nothing is compiled or run) the program
that ``problem.nllh()`` (or ``problem.gradient(sensitivity=...)``) compiles, with
``PetabProblem``'s defaults (Rodas5P, rtol 1e-8, atol 1e-10), and count its operations by
primitive, those inside loop bodies, branches and custom rules included, each as often as it
is written (not as often as it runs). A first call's tracing and compilation grow with this
count (``bench_petab.py`` writes their seconds). Prints the seconds of the trace and a table
per model.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import _common
from bench_petab import problem_file

import pystiffsens.petab as petab


def _sub_jaxprs(params: dict):
    """The jaxprs among an operation's parameters (loop bodies, branches, custom rules)."""
    for value in params.values():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if hasattr(item, "eqns"):
                yield item
            elif hasattr(getattr(item, "jaxpr", None), "eqns"):
                yield item.jaxpr


def count(jaxpr, counts: collections.Counter) -> collections.Counter:
    """Add ``jaxpr``'s operations, and those of its sub-jaxprs, to ``counts`` by primitive name."""
    for eqn in jaxpr.eqns:
        counts[eqn.primitive.name] += 1
        for sub in _sub_jaxprs(eqn.params):
            count(sub, counts)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", type=Path, required=True, help="the Benchmark-Models folder of a clone")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--sensitivity", help="the gradient's program with this sensitivity (default: the nllh's)")
    parser.add_argument("--top", type=int, default=12, help="primitives listed per model")
    args = parser.parse_args(argv)
    print("\n".join(_common.machine_info()))
    kind = "nllh" if args.sensitivity is None else "gradient"
    for name in args.models:
        problem = petab.load(problem_file(args.collection / name))
        program = problem._program(kind, "Rodas5P", args.sensitivity, 1e-8, 1e-10, 100_000)
        start = time.perf_counter()
        jaxpr = program.trace(problem._vector(None)).jaxpr.jaxpr
        traced = time.perf_counter() - start
        counts = count(jaxpr, collections.Counter())
        total = sum(counts.values())
        print(f"\n{name}, {kind} {args.sensitivity or ''}: {total} operations, traced in {traced:.1f} s\n")
        print(_common.markdown_table(["primitive", "operations", "share"],
                                     [[p, n, f"{n / total:.1%}"] for p, n in counts.most_common(args.top)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
