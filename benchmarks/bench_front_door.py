"""The front door against the compiled programs, and against CVODES: what a user calling pystiffsens in a loop pays.

ROBER on [0, 1e5], rtol 1e-8, atol 1e-10 (the loss sum(y(T)) + 1e4 y2(T)), timed in
interleaved rounds (``_common.time_interleaved``), medians:

* **Repeated single calls.** ``pss.solve`` (as called: step records kept) and
  ``pss.solve(save_steps=False)`` against the program each runs, compiled with ``pss.jit``
  (``_common.solve_program``); ``pss.gradient`` with its default sensitivity against
  ``pss.jit(pss.make_gradient_fn(...))``; both against CasADi's CVODES (forward solve;
  forward-sensitivity gradient, ``jtimes(L, p, I, False)``).
* **First calls** in this process (tracing and compilation included; ``--cold`` turns the
  persistent caches off for a first call from scratch).
* **max_steps does not grow the cost.** ``pss.jit(jax.vmap(make_gradient_fn(...)))`` over 8
  ROBER k2 values for every sensitivity, with ``make_gradient_fn``'s defaults, at
  ``max_steps`` 1e3 and 1e5; and repeated ``pss.gradient`` calls at both.

Targets (issue 24): ``pss.solve`` within 1.3x of its compiled program and at most 0.5x CVODES's
forward solve; ``pss.gradient`` within 1.3x of ``pss.jit(make_gradient_fn)`` and at most 0.35x
CVODES's forward-sensitivity gradient (Rodas5P, FBDF, KenCarp4); every sensitivity's batch
within 10 % between ``max_steps`` 1e3 and 1e5.

Run: ``python benchmarks/bench_front_door.py [--rounds N] [--budget S] [--cold] [--no-batches]``
(about 4 minutes on 2 shared cores). Writes ``benchmarks/results/front_door.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if "--cold" in sys.argv:
    os.environ["PYSTIFFSENS_NO_COMPILATION_CACHE"] = "1"  # before pystiffsens turns the caches on

import _common as C  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from bench_solvers import casadi_integrator  # noqa: E402

import pystiffsens as pss  # noqa: E402

RTOL, ATOL, MAX_STEPS = 1e-8, 1e-10, 100_000
SOLVERS = ("Rodas5P", "FBDF", "KenCarp4")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "front_door.csv")


def cvodes_calls(problem):
    """CVODES forward solve and forward-sensitivity gradient of the ROBER loss (CasADi)."""
    import casadi as ca

    F = casadi_integrator("ROBER", problem, RTOL, ATOL)
    P = ca.MX.sym("p", 3)
    xf = F(x0=ca.DM(np.asarray(problem.y0).tolist()), p=P)["xf"]
    L = ca.sum1(xf) + 1e4 * xf[1]
    grad = ca.Function("grad_fwd", [P], [L, ca.jtimes(L, P, ca.DM.eye(3), False)])
    p0 = [float(problem.params[k]) for k in ("k1", "k2", "k3")]
    x0 = np.asarray(problem.y0).tolist()
    return (lambda: F(x0=x0, p=p0)), (lambda: grad(p0))


def single_calls(problem, rounds, budget):
    """Repeated calls: name -> (first-call seconds, list of seconds)."""
    kw = dict(rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS)
    calls = {
        "pss.solve Rodas5P": lambda: pss.solve(problem, "Rodas5P", **kw),
        "pss.solve Rodas5P, save_steps=False": lambda: pss.solve(problem, "Rodas5P", save_steps=False, **kw),
    }
    for saved, label in ((None, "compiled solve program (same records)"), (0, "compiled solve program (no records)")):
        fn, args, _ = C.solve_program(problem, "Rodas5P", saved_steps=saved, **kw)
        calls[label] = lambda fn=fn, args=args: jax.block_until_ready(fn(*args))
    for solver in SOLVERS:
        calls[f"pss.gradient {solver}"] = lambda s=solver: pss.gradient(problem, s, **kw)
        fn = pss.jit(pss.make_gradient_fn(problem, solver, **kw))
        calls[f"pss.jit(make_gradient_fn) {solver}"] = lambda fn=fn: jax.block_until_ready(fn(problem.params))
    cvodes_solve, cvodes_grad = cvodes_calls(problem)
    calls["CVODES solve"] = cvodes_solve
    calls["CVODES forward-sensitivity gradient"] = cvodes_grad
    first = {}
    for name, call in calls.items():
        C.progress(f"first call: {name}")
        _, first[name], _ = C.first_call(call)
    C.progress("repeated calls")
    times = C.time_interleaved(calls, rounds=rounds, budget_s=budget, min_rounds=5, per_call_s=0.5,
                               shuffle_seed=0)
    return {name: (first[name], times[name]) for name in calls}


def batches(problem, rounds, budget):
    """``pss.jit(jax.vmap(make_gradient_fn))`` over 8 k2 values, max_steps 1e3 and 1e5: (name, max_steps) -> times."""
    k2 = jnp.geomspace(3e6, 3e8, 8)
    calls = {}
    for name in pss.sensitivity.names():
        for max_steps in (10**3, 10**5):
            C.progress(f"batch {name} max_steps={max_steps}: compiling")
            fn = pss.make_gradient_fn(problem, "Rodas5P", name, max_steps=max_steps, batch_size=8)
            batch = pss.jit(jax.vmap(lambda k, fn=fn: fn({**problem.params, "k2": k})))
            out = jax.block_until_ready(batch(k2))
            statuses = sorted({pss.ReturnCode(int(s)).name for s in np.asarray(out["status"])})
            calls[(name, max_steps)] = (lambda b=batch: jax.block_until_ready(b(k2)), statuses)
    times = C.time_interleaved({k: v[0] for k, v in calls.items()}, rounds=rounds, budget_s=budget,
                               min_rounds=5, per_call_s=0.5, shuffle_seed=1)
    return {k: (times[k], calls[k][1]) for k in calls}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per timing phase")
    parser.add_argument("--cold", action="store_true", help="persistent caches off: first calls from scratch")
    parser.add_argument("--no-batches", action="store_true")
    args = parser.parse_args(argv)
    problem = pss.problems.get("robertson", t_end=1e5)

    C.banner("The front door (bench_front_door.py)")
    print("\n".join(C.machine_info()))
    print(f"- ROBER on [0, 1e5], rtol={RTOL:g}, atol={ATOL:g}, max_steps={MAX_STEPS}; "
          f"persistent caches {'off' if args.cold else 'on'}; medians of up to {args.rounds} interleaved rounds")

    single = single_calls(problem, args.rounds, args.budget)
    rows, table = [], []
    for name, (first, times) in single.items():
        table.append([name, C.fmt(C.median(times) * 1e3), C.fmt(min(times) * 1e3), len(times), C.fmt(first, ".2f")])
        rows.append(dict(section="single", name=name, max_steps=MAX_STEPS, median_ms=C.median(times) * 1e3,
                         min_ms=min(times) * 1e3, rounds=len(times), first_call_s=first))
    print("\n" + C.markdown_table(["call", "median ms", "min ms", "rounds", "first call s"], table))

    med = {name: C.median(times) for name, (_, times) in single.items()}
    cvodes_solve, cvodes_grad = med["CVODES solve"], med["CVODES forward-sensitivity gradient"]
    verdicts = [
        ("pss.solve / its compiled program", med["pss.solve Rodas5P"] / med["compiled solve program (same records)"], 1.3),
        ("pss.solve(save_steps=False) / its compiled program",
         med["pss.solve Rodas5P, save_steps=False"] / med["compiled solve program (no records)"], 1.3),
        ("pss.solve / CVODES solve", med["pss.solve Rodas5P"] / cvodes_solve, 0.5),
        ("pss.solve(save_steps=False) / CVODES solve", med["pss.solve Rodas5P, save_steps=False"] / cvodes_solve, 0.5),
    ]
    for solver in SOLVERS:
        verdicts.append((f"pss.gradient / pss.jit(make_gradient_fn), {solver}",
                         med[f"pss.gradient {solver}"] / med[f"pss.jit(make_gradient_fn) {solver}"], 1.3))
        verdicts.append((f"pss.gradient / CVODES gradient, {solver}", med[f"pss.gradient {solver}"] / cvodes_grad, 0.35))
    print("\n" + C.markdown_table(
        ["ratio (medians)", "value", "target", "met"],
        [[name, C.fmt(value, ".2f"), f"<= {target}", "yes" if value <= target else "**no**"]
         for name, value, target in verdicts]))

    if not args.no_batches:
        batch = batches(problem, args.rounds, args.budget)
        table = []
        for name in pss.sensitivity.names():
            (short, statuses), (long, _) = batch[(name, 10**3)], batch[(name, 10**5)]
            ratio = C.median(long) / C.median(short)
            table.append([name, C.fmt(C.median(short) * 1e3), C.fmt(C.median(long) * 1e3), C.fmt(ratio, ".2f"),
                          "yes" if abs(ratio - 1) <= 0.10 else "**no**", ", ".join(statuses)])
            for max_steps, times in ((10**3, short), (10**5, long)):
                rows.append(dict(section="batch of 8", name=name, max_steps=max_steps, median_ms=C.median(times) * 1e3,
                                 min_ms=min(times) * 1e3, rounds=len(times), first_call_s=float("nan")))
        print("\nBatches of 8 ROBER k2 values (3e6 to 3e8), Rodas5P, `pss.jit(jax.vmap(make_gradient_fn(...)))` "
              "with its defaults (rtol 1e-6, atol 1e-8):\n")
        print(C.markdown_table(["sensitivity", "max_steps 1e3 ms", "max_steps 1e5 ms", "ratio", "within 10 %",
                                "statuses"], table))

    C.write_rows(RESULTS, rows)
    print(f"\nRows written to {os.path.relpath(RESULTS, C.ROOT)}.")


if __name__ == "__main__":
    main()
