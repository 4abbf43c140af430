"""Continuous adjoints across many saved times: backward steps and gradient time against the forward solve.

A continuous adjoint's backward solve jumps at every saved time (``lambda += dL/dy(t_k)``), so it
runs segment by segment between them (``pystiffsens/sensitivity/continuous_adjoint.py``). Two
problems, rtol 1e-8, atol 1e-10, ``pss.gradient`` (one record length, warm; best of ``--repeat``
calls):

* ``smooth``: ``y' = -k y + sin t`` (2 states) saved at 500 times on [0, 10], loss ``sum(y^2)``:
  the forward solve takes one step per interval;
* with ``--petab YAML --condition ID``, one condition of a PEtab problem as a plain problem
  (``PetabProblem.problem``), e.g. Beer_MolBioSystems2014, 714 measurement times.

Per sensitivity: forward and backward accepted steps, the relative difference of the gradient
from ForwardDiffSensitivity's, and the time. To compare two revisions, run it on each, the older
from a worktree (``git worktree add /tmp/old REV``, then ``PYTHONPATH=/tmp/old python
benchmarks/bench_saved_times.py``).

Run: ``python benchmarks/bench_saved_times.py [--solver Rodas5P] [--petab YAML --condition ID]`` (under a minute
without ``--petab``).
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import pystiffsens as pss  # noqa: E402

RTOL, ATOL = 1e-8, 1e-10
SENSITIVITIES = ("ForwardDiffSensitivity", "InterpolatingAdjoint", "GaussAdjoint")


def smooth() -> pss.Problem:
    return pss.Problem(lambda t, y, p: -p["k"] * y + jnp.sin(t), np.array([1.0, 2.0]), (0.0, 10.0),
                       {"k": np.array([1.0, 3.0])}, saveat=np.linspace(0.02, 10.0, 500),
                       loss=lambda ts, ys, p: jnp.sum(ys ** 2))


def rows(name: str, problem, solver: str, repeat: int) -> list[list]:
    kw = dict(rtol=RTOL, atol=ATOL, max_saved_steps=4096)
    flat = lambda g: np.concatenate([np.ravel(np.asarray(g[k])) for k in sorted(g)])  # noqa: E731
    reference = None
    out = []
    for sensitivity in SENSITIVITIES:
        C.progress(f"{name}: {sensitivity}")
        call = lambda s=sensitivity: pss.gradient(problem, solver, s, **kw)  # noqa: E731
        result = call()
        best = min(timeit.repeat(call, number=1, repeat=repeat))
        reference = flat(result.grad) if reference is None else reference
        difference = np.max(np.abs(flat(result.grad) - reference)) / np.max(np.abs(reference))
        out.append([name, sensitivity, result.status.name, result.stats["n_steps"],
                    result.stats.get("backward_n_steps", "–"), C.fmt(difference, ".1e"), C.fmt(best * 1e3)])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solver", default="Rodas5P")
    parser.add_argument("--petab", help="a PEtab problem's YAML file")
    parser.add_argument("--condition", help="the condition of --petab to solve")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    C.banner("Continuous adjoints across many saved times (bench_saved_times.py)")
    print("\n".join(C.machine_info()))
    print(f"- pystiffsens from {os.path.dirname(pss.__file__)}; {args.solver}, rtol={RTOL:g}, atol={ATOL:g}; "
          f"best of {args.repeat} warm calls\n")
    table = rows("smooth, 500 saved times", smooth(), args.solver, args.repeat)
    if args.petab:
        import pystiffsens.petab as petab

        problem = petab.load(args.petab).problem(args.condition)
        table += rows(f"{args.condition}, {np.size(problem.saveat)} saved times", problem, args.solver, args.repeat)
    print(C.markdown_table(["problem", "sensitivity", "status", "forward steps", "backward steps",
                            "rel. difference from ForwardDiff", "ms"], table))


if __name__ == "__main__":
    main()
