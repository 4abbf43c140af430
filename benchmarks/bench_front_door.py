"""The front door against the compiled programs, and against CVODES: what a user calling pystiffsens in a loop pays.

ROBER on [0, 1e5], rtol 1e-8, atol 1e-10 (the loss sum(y(T)) + 1e4 y2(T)), timed in
interleaved rounds (``_common.time_interleaved``), medians:

* **Repeated single calls.** ``pss.solve`` (as called: step records kept) and
  ``pss.solve(save_steps=False)`` against the program each runs, compiled with ``pss.jit``
  (``_common.solve_program``); ``pss.gradient`` with its default sensitivity against
  ``pss.jit(pss.make_gradient_fn(...))``; both against CasADi's CVODES (forward solve;
  forward-sensitivity gradient, ``jtimes(L, p, I, False)``). Timed two ways, in the same
  shuffled rounds: **in a loop**, each round calls an entry :data:`IN_A_ROW` times in a row
  and takes the mean of all but the first (what a loop of calls, a scipy.optimize
  objective or a training loop, pays); **alone**, one call per entry and round, right
  after the other entries' calls (every cache cold).
* **New parameter values each call** (``params=`` NumPy float64 scalars, as a scipy.optimize
  objective passes them): ``pss.solve(save_steps=False)`` and ``pss.gradient`` against their
  programs called with the same values, on ROBER and, with the PEtab extra installed, on the
  SBML model Boehm_JProteomeRes2014 (condition 1, 10 parameters; ``tests/data/petab``), in the
  same rounds and both regimes.
* **The front door's own Python** (``--python-cost``, instead of the rest): each compiled
  program replaced by the outputs of its first run (``jax.stages.Compiled.__call__``), so a
  call costs only pystiffsens's Python around the program, with the problem's own parameters
  and given new ones (NumPy scalars); ``timeit``, the best of 7 times 2000 calls.
* **First calls** in this process (tracing and compilation included; ``--cold`` turns the
  persistent caches off for a first call from scratch).
* **max_steps does not grow the cost.** ``pss.jit(jax.vmap(make_gradient_fn(...)))`` over 8
  ROBER k2 values for every sensitivity, with ``make_gradient_fn``'s defaults, at
  ``max_steps`` 1e3 and 1e5.

Targets (issue 24): ``pss.solve`` within 1.3x of its compiled program and at most 0.5x CVODES's
forward solve; ``pss.gradient`` within 1.3x of ``pss.jit(make_gradient_fn)`` and at most 0.35x
CVODES's forward-sensitivity gradient (Rodas5P, FBDF, KenCarp4); every sensitivity's batch
within 10 % between ``max_steps`` 1e3 and 1e5.

Run: ``python benchmarks/bench_front_door.py [--rounds N] [--budget S] [--cold] [--no-batches] [--python-cost]``
(about 2 minutes on 2 shared cores). Writes ``benchmarks/results/front_door.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

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
#: Calls of an entry in a row per round when timing calls in a loop (the first is not counted).
IN_A_ROW = 4
REGIMES = ("in a loop", "alone")
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


def in_a_row(call):
    """The mean seconds of the calls after the first of :data:`IN_A_ROW` calls of ``call`` in a row."""
    call()
    start = time.perf_counter()
    for _ in range(IN_A_ROW - 1):
        call()
    return (time.perf_counter() - start) / (IN_A_ROW - 1)


def given_params_problems(rober):
    """``(label, problem)`` of the problems timed with new parameter values each call: ROBER (3 parameters) and,
    where pystiffsens's PEtab extra is installed, condition 1 of Boehm_JProteomeRes2014 (SBML; 10 parameters,
    8 states), shipped in ``tests/data/petab``."""
    yield "ROBER", rober
    try:
        from pystiffsens import petab
    except ImportError:
        return
    boehm = petab.load(os.path.join(C.ROOT, "tests", "data", "petab", "Boehm_JProteomeRes2014",
                                    "Boehm_JProteomeRes2014.yaml"))
    yield "Boehm", boehm.problem(boehm.conditions[0])


def given_params_calls(problem, label, kw):
    """``pss.solve(save_steps=False)`` and ``pss.gradient`` given ``params`` of NumPy float64 scalars each call (as a
    scipy.optimize objective passes them), and the programs they run called with the same values."""
    given = {name: np.float64(value) for name, value in problem.params.items()}
    fn, args, _ = C.solve_program(problem, "Rodas5P", saved_steps=0, **kw)
    host_args = ([np.asarray(leaf) for leaf in args[0]], *args[1:])
    grad = pss.jit(pss.make_gradient_fn(problem, "Rodas5P", **kw))
    return {
        f"pss.solve Rodas5P, save_steps=False, params given, {label}":
            lambda: pss.solve(problem, "Rodas5P", params=given, save_steps=False, **kw),
        f"compiled solve program (no records), params given, {label}": lambda: jax.block_until_ready(fn(*host_args)),
        f"pss.gradient Rodas5P, params given, {label}": lambda: pss.gradient(problem, "Rodas5P", params=given, **kw),
        f"pss.jit(make_gradient_fn) Rodas5P, params given, {label}": lambda: jax.block_until_ready(grad(given)),
    }


def single_calls(problem, rounds, budget):
    """Repeated calls: (regime, name) -> (first-call seconds, list of seconds), regimes :data:`REGIMES`."""
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
    for label, model in given_params_problems(problem):
        calls.update(given_params_calls(model, label, kw))
    cvodes_solve, cvodes_grad = cvodes_calls(problem)
    calls["CVODES solve"] = cvodes_solve
    calls["CVODES forward-sensitivity gradient"] = cvodes_grad
    first = {}
    for name, call in calls.items():
        C.progress(f"first call: {name}")
        _, first[name], _ = C.first_call(call)
    C.progress("repeated calls")
    both = {**{("alone", name): call for name, call in calls.items()},
            **{("in a loop", name): (lambda c=call: in_a_row(c)) for name, call in calls.items()}}
    times = C.time_interleaved(both, rounds=rounds, budget_s=budget, min_rounds=5, per_call_s=2.0,
                               shuffle_seed=0, own_time=True)
    return {key: (first[key[1]], times[key]) for key in both}


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


def python_cost(problem, repeat=7, number=2000):
    """Microseconds of Python per call: name -> best of ``repeat`` means of ``number`` calls whose programs return
    the outputs of their first run."""
    import timeit

    kw = dict(rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS)
    given = {name: np.float64(value) for name, value in problem.params.items()}
    calls = {"pss.gradient Rodas5P": lambda: pss.gradient(problem, "Rodas5P", **kw),
             "pss.gradient Rodas5P, params given": lambda: pss.gradient(problem, "Rodas5P", params=given, **kw),
             "pss.solve Rodas5P": lambda: pss.solve(problem, "Rodas5P", **kw),
             "pss.solve Rodas5P, save_steps=False": lambda: pss.solve(problem, "Rodas5P", save_steps=False, **kw),
             "pss.solve Rodas5P, save_steps=False, params given":
                 lambda: pss.solve(problem, "Rodas5P", params=given, save_steps=False, **kw)}
    for call in calls.values():
        call()
    run, first = jax.stages.Compiled.__call__, {}

    def replay(compiled, *args, **kwargs):
        if id(compiled) not in first:
            first[id(compiled)] = (compiled, run(compiled, *args, **kwargs))
        return first[id(compiled)][1]

    jax.stages.Compiled.__call__ = replay
    try:
        return {name: min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6
                for name, call in calls.items()}
    finally:
        jax.stages.Compiled.__call__ = run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=101)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per timing phase")
    parser.add_argument("--cold", action="store_true", help="persistent caches off: first calls from scratch")
    parser.add_argument("--no-batches", action="store_true")
    parser.add_argument("--python-cost", action="store_true", help="only the front door's Python per call")
    args = parser.parse_args(argv)
    problem = pss.problems.get("robertson", t_end=1e5)
    if args.python_cost:
        print("\n".join(C.machine_info()))
        print("\nPython per call, the compiled programs replaced by their first outputs (best of 7 x 2000 calls):\n")
        print(C.markdown_table(["call", "µs"], [[name, C.fmt(us, ".1f")] for name, us in python_cost(problem).items()]))
        return

    C.banner("The front door (bench_front_door.py)")
    print("\n".join(C.machine_info()))
    print(f"- ROBER on [0, 1e5], rtol={RTOL:g}, atol={ATOL:g}, max_steps={MAX_STEPS}; "
          f"persistent caches {'off' if args.cold else 'on'}; medians of up to {args.rounds} interleaved rounds")

    single = single_calls(problem, args.rounds, args.budget)
    rows, table = [], []
    for (regime, name), (first, times) in single.items():
        table.append([name, regime, C.fmt(C.median(times) * 1e3), C.fmt(min(times) * 1e3), len(times),
                      C.fmt(first, ".2f")])
        rows.append(dict(section=f"single, {regime}", name=name, max_steps=MAX_STEPS,
                         median_ms=C.median(times) * 1e3, min_ms=min(times) * 1e3, rounds=len(times),
                         first_call_s=first))
    print("\n" + C.markdown_table(["call", "timed", "median ms", "min ms", "rounds", "first call s"], table))

    for regime in REGIMES:
        med = {name: C.median(times) for (r, name), (_, times) in single.items() if r == regime}
        cvodes_solve, cvodes_grad = med["CVODES solve"], med["CVODES forward-sensitivity gradient"]
        verdicts = [
            ("pss.solve / its compiled program",
             med["pss.solve Rodas5P"] / med["compiled solve program (same records)"], 1.3),
            ("pss.solve(save_steps=False) / its compiled program",
             med["pss.solve Rodas5P, save_steps=False"] / med["compiled solve program (no records)"], 1.3),
            ("pss.solve / CVODES solve", med["pss.solve Rodas5P"] / cvodes_solve, 0.5),
            ("pss.solve(save_steps=False) / CVODES solve",
             med["pss.solve Rodas5P, save_steps=False"] / cvodes_solve, 0.5),
        ]
        given = "pss.gradient Rodas5P, params given, "
        for label in (name[len(given):] for name in med if name.startswith(given)):
            verdicts.append((f"pss.solve(save_steps=False) / its compiled program, params given, {label}",
                             med[f"pss.solve Rodas5P, save_steps=False, params given, {label}"]
                             / med[f"compiled solve program (no records), params given, {label}"], 1.3))
            verdicts.append((f"pss.gradient / pss.jit(make_gradient_fn), params given, {label}",
                             med[f"pss.gradient Rodas5P, params given, {label}"]
                             / med[f"pss.jit(make_gradient_fn) Rodas5P, params given, {label}"], 1.3))
        for solver in SOLVERS:
            verdicts.append((f"pss.gradient / pss.jit(make_gradient_fn), {solver}",
                             med[f"pss.gradient {solver}"] / med[f"pss.jit(make_gradient_fn) {solver}"], 1.3))
            verdicts.append((f"pss.gradient / CVODES gradient, {solver}", med[f"pss.gradient {solver}"] / cvodes_grad,
                             0.35))
        print(f"\nRatios of medians, calls timed {regime}:\n")
        print(C.markdown_table(
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
