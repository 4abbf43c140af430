"""What the dense LU's LAPACK calls cost in single calls and vmapped batches (``pystiffsens.solvers.lapack``).

POLLU (20 states, 25 rate constants; the dense LU calls LAPACK above 8 states), Rodas5P, rtol 1e-8,
atol 1e-10: a repeated ``pss.solve`` and ``pss.gradient`` (InterpolatingAdjoint), and a
``pss.jit(jax.vmap(...))`` over 64 scalings of the rate constants of the solve's final state and
of its forward-mode gradient (``ForwardDiffSensitivity``: 26 columns per solve). Medians of
interleaved rounds (``_common.time_interleaved``) after a warm-up call.

Run: ``python benchmarks/bench_lapack_batches.py [--label L] [--out CSV]`` (about a minute); for
a before/after comparison run it once more with ``PYTHONPATH`` set to a worktree of the other revision.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

LANES = 64


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "lapack_batches.csv"))
    args = parser.parse_args(argv)
    import jax
    import jax.numpy as jnp

    import pystiffsens as pss

    problem = pss.problems.get("pollution")
    options = dict(rtol=1e-8, atol=1e-10)
    scales = jnp.linspace(0.5, 1.5, LANES)

    def final_state(scale, sensitivity=None):
        params = {"k": problem.params["k"] * scale}
        return pss.solve(problem, "Rodas5P", sensitivity=sensitivity, params=params, **options).ys[-1, 0]

    solves = pss.jit(jax.vmap(final_state))
    gradients = pss.jit(jax.vmap(jax.grad(lambda s: final_state(s, "ForwardDiffSensitivity"))))
    calls = {
        "solve": lambda: pss.solve(problem, "Rodas5P", **options).ys,
        "gradient": lambda: pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint", **options).grad,
        f"batch of {LANES} solves": lambda: jax.block_until_ready(solves(scales)),
        f"batch of {LANES} forward-mode gradients": lambda: jax.block_until_ready(gradients(scales)),
    }
    for call in calls.values():
        call()
    times = C.time_interleaved(calls, rounds=args.rounds, budget_s=60.0, per_call_s=5.0)
    rows = [{"label": args.label, "call": name, "median_ms": 1e3 * C.median(ts), "rounds": len(ts)}
            for name, ts in times.items()]
    for row in rows:
        print(f"{row['call']:40s} {row['median_ms']:9.2f} ms ({row['rounds']} rounds)")
    C.write_rows(args.out, rows)


if __name__ == "__main__":
    main()
