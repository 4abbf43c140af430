"""Compiled solve and gradients of built-in problems: the quick A/B of an engine change on several system sizes.

For each problem: the program ``pss.solve`` runs without step records (``_common.solve_program``)
and ``pss.jit(pss.make_gradient_fn(problem, solver, sensitivity))`` for each sensitivity, at
rtol 1e-8, atol 1e-10; each timed as the best of ``--repeat`` means of ``--number`` calls after
a first call (whose time, tracing and compilation included, is the ``first call s`` column; run
with ``PYSTIFFSENS_NO_COMPILATION_CACHE=1`` for a cold one). ``--iteration-matrix-tangents
products`` or ``formed`` traces everything inside ``solvers.partitioned.iteration_matrix_tangents``
(every iteration-matrix solve differentiated by that rule, where by default the rule follows the
mode and the system's size). To compare two revisions, run it on each, the older from a
worktree: ``git worktree add /tmp/old REV`` then ``PYTHONPATH=/tmp/old python
benchmarks/bench_problem_times.py`` (with ``PYSTIFFSENS_NO_COMPILATION_CACHE=1`` when the
revisions trace differently but share a cache).

Run: ``python benchmarks/bench_problem_times.py [--problems hires pollution] [--solver Rodas5P]
[--sensitivities ForwardDiffSensitivity ReverseDiffAdjoint]`` (about 1 minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import jax  # noqa: E402

import pystiffsens as pss  # noqa: E402

RTOL, ATOL, MAX_STEPS = 1e-8, 1e-10, 100_000


def times(problem_name: str, solver: str, sensitivities, number: int, repeat: int) -> list[list]:
    """Rows ``[problem, states, what, ms]`` for the solve and each sensitivity's gradient."""
    problem = pss.problems.get(problem_name)
    kw = dict(rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS)
    fn, args, _ = C.solve_program(problem, solver, saved_steps=0, **kw)
    calls = {f"{solver} solve": lambda: jax.block_until_ready(fn(*args))}
    for sensitivity in sensitivities:
        gradient = pss.jit(pss.make_gradient_fn(problem, solver, sensitivity, **kw))
        calls[f"{solver} {sensitivity}"] = lambda g=gradient: jax.block_until_ready(g(problem.params))
    rows = []
    for what, call in calls.items():
        C.progress(f"{problem_name}: {what}")
        start = time.perf_counter()
        call()
        first = time.perf_counter() - start
        best = min(timeit.repeat(call, number=number, repeat=repeat)) / number
        rows.append([problem_name, int(problem.y0.shape[0]), what, C.fmt(first), C.fmt(best * 1e3)])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="+", default=["hires", "pollution"])
    parser.add_argument("--solver", default="Rodas5P")
    parser.add_argument("--sensitivities", nargs="+", default=["ForwardDiffSensitivity", "ReverseDiffAdjoint"])
    parser.add_argument("--number", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    C.add_tangent_rule_argument(parser)
    args = parser.parse_args(argv)
    C.banner("Compiled solve and gradients of built-in problems (bench_problem_times.py)")
    print("\n".join(C.machine_info()))
    print(f"- pystiffsens from {os.path.dirname(pss.__file__)}; rtol={RTOL:g}, atol={ATOL:g}; best of "
          f"{args.repeat} means of {args.number} calls\n")
    with C.tangent_rule(args.iteration_matrix_tangents):  # traced in times()
        rows = [row for name in args.problems
                for row in times(name, args.solver, args.sensitivities, args.number, args.repeat)]
    print(C.markdown_table(["problem", "states", "program", "first call s", "ms"], rows))


if __name__ == "__main__":
    main()
