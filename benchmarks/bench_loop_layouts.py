"""How the integration loop is laid out for XLA:CPU, and what each layout costs: A/B runs in one process.

ROBER on [0, 1e5], rtol 1e-8, atol 1e-10; compiled programs (``pss.jit``), medians of interleaved
rounds (``_common.time_interleaved``, three calls of a program in a row). Three questions, each
answered by switching one choice of ``pystiffsens`` before the programs are traced:

* **Step records**: a solve program that keeps its steps (``_common.solve_program``, records of
  1024 entries) and the discrete and interpolating adjoint gradients, with the records noted in
  small logs and flushed between inner loops (``integrate._Log``, the default) against the step
  in a branch of its own beside the records (``integrate._log_rows`` answering ``(0, ())``), and
  the solve program without records.
* **Stacked scalars**: the solve program without records and the ForwardDiffSensitivity
  gradient, with the loop's scalars stacked (``lanes.while_loop`` in the step loop and in
  Newton's loops, the default) against ``lax.while_loop``.
* **CPU dispatch** (``--dispatch``): the same programs, and a solve of a single step attempt
  (``max_steps=1``), in two child processes, one with JAX's asynchronous dispatch on CPU kept
  (``PYSTIFFSENS_CPU_ASYNC_DISPATCH=1``) and one as ``import pystiffsens`` sets it (off).

Run: ``python benchmarks/bench_loop_layouts.py [--rounds N] [--solvers ...]`` (about 3 minutes on
2 shared cores). Writes ``benchmarks/results/loop_layouts.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Layouts are switched by setting module attributes, which the caches of traced and compiled programs cannot see.
os.environ["PYSTIFFSENS_NO_COMPILATION_CACHE"] = "1"
import _common as C  # noqa: E402
import jax  # noqa: E402
from jax import lax  # noqa: E402

import pystiffsens as pss  # noqa: E402
from pystiffsens import integrate, lanes  # noqa: E402
from pystiffsens.solvers import newton  # noqa: E402

RTOL, ATOL, MAX_STEPS = 1e-8, 1e-10, 100_000
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "loop_layouts.csv")
LOG_ROWS = integrate._log_rows


def programs(solvers, *, records: bool, adjoints: bool, forward: bool, max_steps: int = MAX_STEPS) -> dict:
    """name -> blocking call of each compiled program, traced and run once now (with the layout in force)."""
    problem = pss.problems.get("robertson")
    calls = {}
    for solver in solvers:
        for saved in ((1024, 0) if records else (0,)):
            fn, args, _ = C.solve_program(problem, solver, saved_steps=saved, rtol=RTOL, atol=ATOL, max_steps=max_steps)
            calls[f"{solver} solve, {'records of 1024' if saved else 'no records'}"] = (
                lambda fn=fn, args=args: jax.block_until_ready(fn(*args)))
        sensitivities = (("ReverseDiffAdjoint", "InterpolatingAdjoint") if adjoints else ()) + (
            ("ForwardDiffSensitivity",) if forward else ())
        for sensitivity in sensitivities:
            fn = pss.jit(pss.make_gradient_fn(problem, solver, sensitivity, rtol=RTOL, atol=ATOL, max_steps=max_steps))
            calls[f"{solver} {sensitivity} gradient"] = lambda fn=fn: jax.block_until_ready(fn(problem.params))
    for call in calls.values():
        call()
    return calls


def compare(layouts: dict, solvers, rounds: int, **kinds) -> dict:
    """(layout, program) -> median seconds: each layout's programs traced with it in force, timed together."""
    calls = {}
    for layout, switch in layouts.items():
        undo = switch()
        C.progress(f"compiling the programs, {layout}")
        calls.update({(layout, name): call for name, call in programs(solvers, **kinds).items()})
        undo()
    times = C.time_interleaved({k: (lambda c=c: [c() for _ in range(3)]) for k, c in calls.items()}, rounds=rounds,
                               budget_s=150, min_rounds=5, per_call_s=1.0, shuffle_seed=2)
    return {key: C.median(times[key]) / 3 for key in calls}


def _set(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    return lambda: setattr(module, name, old)


def _both(*undos):
    return lambda: [undo() for undo in undos]


def child(solvers, rounds: int) -> None:
    """The dispatch question's measurement in this process: JSON on stdout."""
    calls = programs(solvers, records=True, adjoints=False, forward=True)
    calls.update({f"{name}, max_steps=1": call
                  for name, call in programs(solvers[:1], records=False, adjoints=False, forward=False,
                                             max_steps=1).items()})
    times = C.time_interleaved({k: (lambda c=c: [c() for _ in range(3)]) for k, c in calls.items()}, rounds=rounds,
                               budget_s=60, min_rounds=5, per_call_s=1.0, shuffle_seed=3)
    print(json.dumps({name: C.median(times[name]) / 3 for name in calls}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--solvers", nargs="+", default=["Rodas5P", "FBDF", "KenCarp4"])
    parser.add_argument("--dispatch", action="store_true", help="only the CPU dispatch question")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.solvers, args.rounds)

    C.banner("Loop layouts on XLA:CPU (bench_loop_layouts.py)")
    print("\n".join(C.machine_info()))
    print(f"- ROBER on [0, 1e5], rtol={RTOL:g}, atol={ATOL:g}, max_steps={MAX_STEPS}; medians of up to "
          f"{args.rounds} interleaved rounds of three calls")
    rows = []

    def table(question, result, layouts):
        names = list(dict.fromkeys(name for _, name in result))
        print(f"\n{question}\n")
        print(C.markdown_table(["program", *(f"{layout} ms" for layout in layouts)],
                               [[name, *(C.fmt(result[(layout, name)] * 1e3) for layout in layouts)] for name in names]))
        rows.extend(dict(question=question, program=name, layout=layout, median_ms=result[(layout, name)] * 1e3)
                    for layout in layouts for name in names)

    if not args.dispatch:
        layouts = {"logged": lambda: (lambda: None), "step in a branch": lambda: _set(integrate, "_log_rows",
                                                                                       lambda *a: (0, ()))}
        table("Step records: noted in logs, or the step in a branch beside them",
              compare(layouts, args.solvers, args.rounds, records=True, adjoints=True, forward=False), list(layouts))
        layouts = {"stacked": lambda: (lambda: None),
                   "lax.while_loop": lambda: _both(_set(integrate, "while_loop", lax.while_loop),
                                                   _set(newton, "while_loop", lax.while_loop))}
        assert integrate.while_loop is lanes.while_loop is newton.while_loop
        table("Loop scalars: stacked into one array per dtype, or one buffer each",
              compare(layouts, args.solvers, args.rounds, records=False, adjoints=False, forward=True), list(layouts))

    result = {}
    for layout, keep in (("asynchronous (JAX's default)", "1"), ("synchronous (pystiffsens)", "")):
        env = dict(os.environ, PYSTIFFSENS_CPU_ASYNC_DISPATCH=keep)
        C.progress(f"child process: dispatch {layout}")
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--rounds", str(args.rounds),
                              "--solvers", *args.solvers], env=env, capture_output=True, text=True, check=True)
        result.update({(layout, name): seconds for name, seconds in json.loads(out.stdout.splitlines()[-1]).items()})
    table("CPU dispatch: JAX's asynchronous default, or synchronous", result,
          ["asynchronous (JAX's default)", "synchronous (pystiffsens)"])

    C.write_rows(RESULTS, rows)
    print(f"\nRows written to {os.path.relpath(RESULTS, C.ROOT)}.")


if __name__ == "__main__":
    main()
