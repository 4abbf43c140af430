"""What step records cost in a compiled gradient program, by their length.

A batch of ROBER gradients on [0, 1e5] (k2 over ``logspace(5, 9, B)``), Rodas5P, rtol 1e-8,
atol 1e-10, ``pss.jit(jax.vmap(pss.make_gradient_fn(...)))`` (pystiffsens's compiler options), timed in interleaved rounds
(``_common.time_interleaved``), medians. Three questions:

* **Length alignment**: ReverseDiffAdjoint, B = 32, records of 1000 ... 1032 entries
  (``max_saved_steps``). The lengths pystiffsens picks itself are multiples of
  ``pss.memory.RECORD_ALIGNMENT``.
* **Records as long as max_steps**: InterpolatingAdjoint, B = 32, records of 1024 entries
  against 100 000 (what every program allocated before the record lengths followed the solve).
* **The ladder in one program**: InterpolatingAdjoint with ``max_steps=100_000`` and
  ``make_gradient_fn``'s default record lengths (``pss.memory.program_lengths``: 1024 and
  100 000, the longer in a branch that runs only when the shorter fills, with checkpoints:
  ``pss.sensitivity.rules.branches``) against the 1024 entries alone, for B = 1, 8, 32, with
  XLA's planned temporary memory. Every ROBER solve here fits 1024 entries, so the long
  branch never runs.

Run: ``python benchmarks/bench_records.py [--rounds N]`` (about 2 minutes on 2 shared cores).
Writes ``benchmarks/results/records.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import pystiffsens as pss  # noqa: E402

RTOL, ATOL, MAX_STEPS = 1e-8, 1e-10, 100_000
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "records.csv")


def batch_program(sensitivity: str, batch: int, max_saved_steps: int | None):
    """(blocking zero-argument call, XLA's planned temporary bytes) of one compiled batch."""
    problem = pss.problems.get("robertson", t_end=1e5)
    fn = pss.make_gradient_fn(problem, "Rodas5P", sensitivity, rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS,
                              max_saved_steps=max_saved_steps)
    k2 = jnp.asarray(np.logspace(5, 9, batch))
    compiled = pss.jit(jax.vmap(lambda s: fn(problem.set_stiffness(problem.params, s)))).lower(k2).compile()
    out = jax.block_until_ready(compiled(k2))
    if not np.all(np.asarray(out["status"]) == int(pss.ReturnCode.Success)):
        raise RuntimeError(f"{sensitivity}, B={batch}, records {max_saved_steps}: a lane failed")
    return (lambda: jax.block_until_ready(compiled(k2))), compiled.memory_analysis().temp_size_in_bytes


def measure(cases: dict, rounds: int) -> dict:
    """name -> (median s, temporary bytes) for ``cases``: name -> (sensitivity, B, max_saved_steps)."""
    programs = {}
    for name, case in cases.items():
        C.progress(f"compiling {name}")
        programs[name] = batch_program(*case)
    times = C.time_interleaved({name: call for name, (call, _) in programs.items()}, rounds=rounds, budget_s=120,
                               min_rounds=5, per_call_s=2.0, shuffle_seed=1)
    return {name: (C.median(times[name]), programs[name][1]) for name in cases}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)

    C.banner("Step records by length (bench_records.py)")
    print("\n".join(C.machine_info()))
    print(f"- ROBER on [0, 1e5], k2 = logspace(5, 9, B), Rodas5P, rtol={RTOL:g}, atol={ATOL:g}, "
          f"max_steps={MAX_STEPS}; medians of up to {args.rounds} interleaved rounds")
    rows = []

    def table(title, cases, label):
        result = measure(cases, args.rounds)
        print(f"\n{title}\n")
        print(C.markdown_table([label, "median ms", "temporary MiB"],
                               [[name, C.fmt(t * 1e3), C.fmt(temp / 2**20)] for name, (t, temp) in result.items()]))
        for name, (t, temp) in result.items():
            sensitivity, batch, saved = cases[name]
            rows.append(dict(question=title, case=name, sensitivity=sensitivity, B=batch,
                             max_saved_steps="ladder" if saved is None else saved, median_ms=t * 1e3,
                             temp_bytes=temp))

    table("Length alignment: ReverseDiffAdjoint, B = 32",
          {f"{n} entries ({'multiple' if n % 16 == 0 else 'not a multiple'} of 16)": ("ReverseDiffAdjoint", 32, n)
           for n in (1000, 1008, 1012, 1016, 1024, 1032)}, "records")
    table("Records as long as max_steps: InterpolatingAdjoint, B = 32",
          {f"{n} entries": ("InterpolatingAdjoint", 32, n) for n in (1024, MAX_STEPS)}, "records")
    table("The ladder in one program: InterpolatingAdjoint",
          {f"B = {b}, {what}": ("InterpolatingAdjoint", b, saved)
           for b in (1, 8, 32) for what, saved in (("1024 entries alone", 1024), ("ladder 1024 / 100000", None))},
          "batch, records")

    C.write_rows(RESULTS, rows)
    print(f"\nRows written to {os.path.relpath(RESULTS, C.ROOT)}.")


if __name__ == "__main__":
    main()
