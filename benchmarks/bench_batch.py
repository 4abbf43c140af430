"""Batch benchmark (issue 10 item 1): a vmapped sweep batch against its lanes, and against ``max_steps``.

Run: ``python benchmarks/bench_batch.py`` (after ``pip install -e .``); prints Markdown on
stdout, progress on stderr, and writes every measurement to ``benchmarks/results/batch.csv``.

The work is the issue's grid: ROBER on [0, 1e5], rtol 1e-8 / atol 1e-10, Rodas5P, k2 on
``logspace(5, 9, B)`` (B = 32 by default), the gradient of the built-in loss. For every
sensitivity algorithm:

* **lanes**: the sum over the B values of one compiled single call each
  (``pss.jit(pss.make_gradient_fn(..., max_saved_steps=S))``, the call's median over the
  rounds, ``S`` the first step-record length the batch uses, the JAX backend's
  ``record_lengths(...)[0]``, or ``max_steps`` for the algorithms that record nothing),
  against one run of the batch (the vmapped sweep batch,
  ``pss.backends.get("jax").gradient_batch(...)``, its ``BatchResult.run_time_s``), both
  with ``max_steps=100_000``. Target: batch / lanes <= 1.5.
* **max_steps**: the batch with ``max_steps`` = 1e3, 1e4 and 1e5. Target: within 10 %
  between 1e3 and 1e5 (for the lanes that succeed at 1e3; a lane that fails at 1e3 and
  goes on at 1e5 takes more steps, which is no buffer cost).

Every timed callable runs once per round, in a new random order each round
(``_common.time_interleaved`` with ``shuffle_seed``), so neither a burst of load from other processes nor a position in
the round favours one; the tables give medians.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import jax  # noqa: E402

import pystiffsens as pss  # noqa: E402  (enables float64)
from pystiffsens import programs  # noqa: E402
from pystiffsens.backends.native import inputs  # noqa: E402

SOLVER = "Rodas5P"
RTOL, ATOL = 1e-8, 1e-10
MAX_STEPS = (1_000, 10_000, 100_000)
FIELDS = ["sensitivity", "what", "max_steps", "B", "median_s", "min_s", "rounds", "statuses", "steps"]


def problem():
    return pss.problems.get("robertson", t_end=1e5)


def grid(b: int) -> np.ndarray:
    return np.logspace(5, 9, b)


def options(max_steps: int):
    """(solver object, the options it runs with) of every batch and lane."""
    solver = pss.backends.get("jax").solver(SOLVER)
    return solver, pss.Options(rtol=RTOL, atol=ATOL, max_steps=max_steps).for_method(solver)


def first_saved_steps(sensitivity: str) -> int:
    """The step-record length a batch with ``max_steps=MAX_STEPS[-1]`` starts with (its first program;
    ``max_steps`` for an algorithm that records nothing, as the batch passes it)."""
    p = problem()
    solver, opts = options(MAX_STEPS[-1])
    if not pss.sensitivity.get(sensitivity).records:
        return opts.max_steps
    inp = inputs(p)
    return pss.backends.default().record_lengths(programs.Spec(p.rhs, inp.structure, solver), inp, opts)[0]


def batch_run(sensitivity: str, b: int, max_steps: int):
    backend = pss.backends.get("jax")
    solver, opts = options(max_steps)
    choice = pss.backends.Choice(pss.sensitivity.get(sensitivity))
    run = backend.gradient_batch(problem(), grid(b), solver, choice, opts, "cpu")  # compiles the first program
    first = run()  # also the rerun of lanes whose step buffers filled, compiled once here
    statuses = sorted({r.status.name for r in first.results})
    steps = [r.stats["n_steps"] for r in first.results]
    return (lambda: run().run_time_s), statuses, f"{min(steps)}..{max(steps)}"


def lane_calls(sensitivity: str, b: int):
    p = problem()
    fn = pss.jit(pss.make_gradient_fn(p, SOLVER, sensitivity, rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS[-1],
                                      max_saved_steps=first_saved_steps(sensitivity)))
    calls = {}
    for i, s in enumerate(grid(b)):
        params = p.set_stiffness(p.params, s)
        jax.block_until_ready(fn(params))
        calls[i] = (lambda params=params: jax.block_until_ready(fn(params)))
    return calls


def measure(sensitivity: str, b: int, rounds: int, budget_s: float) -> list[dict]:
    C.progress(f"{sensitivity}: compiling")
    batches = {ms: batch_run(sensitivity, b, ms) for ms in MAX_STEPS}
    lanes = lane_calls(sensitivity, b)
    calls = {("batch", ms): run for ms, (run, _, _) in batches.items()}
    calls |= {("lane", i): call for i, call in lanes.items()}
    C.progress(f"{sensitivity}: timing")
    # Every callable in every round (no per-call cap), in a new random order each round; a
    # batch reports its run_time_s (the compiled run, not the result objects).
    times = C.time_interleaved(calls, rounds=rounds, budget_s=budget_s, min_rounds=5, per_call_s=math.inf,
                               shuffle_seed=0, own_time=True)
    rows = []
    for ms, (_, statuses, steps) in batches.items():
        t = times[("batch", ms)]
        rows.append(dict(sensitivity=sensitivity, what="batch", max_steps=ms, B=b, median_s=C.median(t),
                         min_s=min(t), rounds=len(t), statuses="/".join(statuses), steps=steps))
    lane_medians = [C.median(times[("lane", i)]) for i in lanes]
    rows.append(dict(sensitivity=sensitivity, what="sum of lanes", max_steps=MAX_STEPS[-1], B=b,
                     median_s=float(np.sum(lane_medians)), min_s=float(np.sum([min(times[("lane", i)]) for i in lanes])),
                     rounds=min(len(times[("lane", i)]) for i in lanes), statuses="", steps=""))
    return rows


def markdown(meta, rows) -> str:
    out = ["# pystiffsens batch benchmark", "", *meta, ""]
    table = []
    verdict_lanes, verdict_steps = [], []
    for sens in dict.fromkeys(r["sensitivity"] for r in rows):
        mine = {(r["what"], int(r["max_steps"])): r for r in rows if r["sensitivity"] == sens}
        batch = {ms: mine[("batch", ms)] for ms in MAX_STEPS}
        lanes = mine[("sum of lanes", MAX_STEPS[-1])]
        ratio = float(batch[MAX_STEPS[-1]]["median_s"]) / float(lanes["median_s"])
        growth = float(batch[MAX_STEPS[-1]]["median_s"]) / float(batch[MAX_STEPS[0]]["median_s"])
        same_work = batch[MAX_STEPS[0]]["statuses"] == batch[MAX_STEPS[-1]]["statuses"] == "Success"
        table.append([sens, *(C.fmt(1e3 * float(batch[ms]["median_s"]), ".3g") for ms in MAX_STEPS),
                      C.fmt(1e3 * float(lanes["median_s"]), ".3g"), f"{ratio:.2f}",
                      f"{growth:.2f}" + ("" if same_work else " (statuses differ)"),
                      " / ".join(batch[ms]["statuses"] for ms in MAX_STEPS), batch[MAX_STEPS[-1]]["steps"]])
        verdict_lanes.append(ratio <= 1.5)
        if same_work:
            verdict_steps.append(abs(growth - 1.0) <= 0.10)
    b = rows[0]["B"]
    headers = ["sensitivity", *(f"batch, max_steps={ms:.0e} ms" for ms in MAX_STEPS), f"sum of {b} lanes ms",
               "batch / lanes", "1e5 / 1e3", "statuses (1e3 / 1e4 / 1e5)", "steps per lane"]
    out += [C.markdown_table(headers, table), ""]
    out.append(f"- batch / lanes <= 1.5 for every sensitivity: {'**met**' if all(verdict_lanes) else '**not met**'}")
    out.append(f"- batch within 10 % between max_steps 1e3 and 1e5 (sensitivities whose lanes all succeed at both): "
               f"{'**met**' if verdict_steps and all(verdict_steps) else '**not met**'} "
               f"({sum(verdict_steps)} of {len(verdict_steps)})")
    out.append("- times are medians over rounds in random order; a lane's time is its own compiled single call")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sensitivities", nargs="+", default=pss.sensitivity.names(), choices=pss.sensitivity.names())
    ap.add_argument("-B", type=int, default=32, help="batch size (default 32, the issue's grid)")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--budget", type=float, default=20.0, help="timing budget per sensitivity, s")
    ap.add_argument("--csv", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "batch.csv"))
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    meta = C.machine_info() + [
        f"- command: `python benchmarks/bench_batch.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"- ROBER on [0, 1e5], k2 = logspace(5, 9, {args.B}), {SOLVER}, rtol {RTOL:g}, atol {ATOL:g}",
    ]
    rows = []
    for sens in args.sensitivities:
        rows += measure(sens, args.B, args.rounds, args.budget)
    meta.append(f"- load average at end: {C.load():.1f}; total run time {time.perf_counter() - start:.0f} s")
    os.makedirs(os.path.dirname(args.csv), exist_ok=True)
    with open(args.csv, "w", newline="") as fh:
        fh.writelines(f"# {line}\n" for line in meta)
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    print(markdown(meta, rows))
    C.progress(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
