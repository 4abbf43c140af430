"""Compile-time benchmark: what an XLA option of pystiffsens's saves and costs, program by program.

Run: ``python benchmarks/bench_compile.py`` (after ``pip install -e .``); prints Markdown on
stdout, progress on stderr, and writes every measurement to
``benchmarks/results/compile.csv``. About 17 minutes on 2 cores; ``--solvers``,
``--sensitivities`` and ``--no-batch`` choose less (``--help``).

Every program is compiled twice, fresh (pystiffsens's persistent caches off), with two sets of
compiler options, in alternating order from one program to the next:

* by default, what ``PYSTIFFSENS_FAST_COMPILE=1`` changes: pystiffsens's default options
  ``pystiffsens._xla.COMPILER_OPTIONS`` ("fusion": XLA:CPU's fusion emitters, its default) and
  the same with ``FAST_COMPILE_OPTIONS`` merged in ("elemental": XLA:CPU's elemental emitters,
  ``xla_cpu_use_fusion_emitters=False``, and the passes of ``FAST_COMPILE_DISABLED_PASSES`` left
  out);
* with ``--disable-pass NAME``, what leaving out one of the passes that fast compilation
  leaves out (``pystiffsens._xla.FAST_COMPILE_DISABLED_PASSES``) changes on its own: the
  default options ("default") and the same without the pass ``NAME`` ("without_pass"); rows go
  to ``benchmarks/results/compile_passes.csv``.

The program is traced and lowered once (``jax.jit(fn).lower(args)``, its time is the "trace +
lower" column) and compiled by XLA once with each set (``lowered.compile(compiler_options=...)``,
the "compile" columns). The two executables then run in interleaved rounds
(``_common.time_interleaved``, shuffled); the table gives medians. The last column is the
largest relative difference between the two gradients.

Programs: ``pss.make_gradient_fn(problem, solver, sensitivity)`` of ROBER, loss sum(y(T)) +
1e4*y2(T), gradient w.r.t. (k1, k2, k3), rtol 1e-8 / atol 1e-10, ``max_steps=100_000``:

* adaptive solvers on [0, 1e5]; fixed-step solvers on [0, 1e-2] with dt = 1e-4 (ROBER's
  initial layer needs dt <= 1e-4 for Newton to converge);
* **single**: one call at the built-in parameters; **batch**: the vmapped sweep of k2 over
  ``logspace(5, 9, 32)`` (adaptive solvers only), ``jax.vmap`` of the same function.

``--trace-only`` measures the Python half alone: each program is traced and lowered once and
not compiled (rows to ``benchmarks/results/trace_lower.csv``); run it at two revisions to
compare what a change of the tracing costs.

The step records are ``make_gradient_fn``'s default (``max_saved_steps=None``: the program
holds a ``lax.cond`` ladder of record lengths, :func:`pystiffsens.memory.saved_step_lengths`);
``--max-saved-steps N`` compiles one length instead (``N = 100000`` is the single
``max_steps``-long record of the programs before the ladder).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("PYSTIFFSENS_NO_COMPILATION_CACHE", "1")  # fresh compilations
import _common as C  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import pystiffsens as pss  # noqa: E402  (enables float64)
from pystiffsens import _xla  # noqa: E402

RTOL, ATOL, MAX_STEPS = 1e-8, 1e-10, 100_000
BATCH = 32
ADAPTIVE = ("Rodas4", "Rodas5P", "KenCarp4", "FBDF")
FIXED = ("ImplicitEuler", "Trapezoid", "BDF2")
BATCH_SENSITIVITIES = ("ForwardDiffSensitivity", "ReverseDiffAdjoint", "InterpolatingAdjoint", "GaussAdjoint")


def fields(a: str, b: str) -> list[str]:
    return ["solver", "sensitivity", "kind", "trace_lower_s", f"compile_{a}_s", f"compile_{b}_s", f"run_{a}_s",
            f"run_{b}_s", "rounds", "max_rel_diff", "status"]


def variants(disable_pass: str | None = None) -> dict:
    """Two named sets of compiler options, the one under test first."""
    if disable_pass is None:
        fusion, elemental = _xla.compiler_options(fast=False), _xla.compiler_options(fast=True)
        if elemental == fusion:
            sys.exit(f"This XLA ({jax.__version__}) knows none of {_xla.FAST_COMPILE_OPTIONS}; there is nothing to compare.")
        return {"elemental": elemental, "fusion": fusion}
    without_pass = {**_xla.COMPILER_OPTIONS, "xla_disable_hlo_passes": ",".join(_xla.DISABLED_PASSES + (disable_pass,))}
    return {"without_pass": _xla.supported(without_pass), "default": _xla.supported(_xla.COMPILER_OPTIONS)}


def program(solver: str, sensitivity: str, kind: str, max_saved_steps: int | None = None):
    """(function, argument) of one benchmark program."""
    fixed = solver in FIXED
    problem = pss.problems.get("robertson", t_end=1e-2 if fixed else 1e5)
    fn = pss.make_gradient_fn(problem, solver, sensitivity, rtol=RTOL, atol=ATOL, dt=1e-4 if fixed else None,
                              max_steps=MAX_STEPS, max_saved_steps=max_saved_steps,
                              batch_size=BATCH if kind == "batch" else 1)
    if kind == "single":
        return fn, problem.params
    return jax.vmap(lambda s: fn(problem.set_stiffness(problem.params, s))), jnp.asarray(np.logspace(5, 9, BATCH))


def rel_diff(a, b) -> float:
    """Largest relative difference of two gradients; inf where they are not NaN in the same places."""
    a, b = (np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(t)]) for t in (a, b))
    finite = np.isfinite(b)
    if not np.array_equal(np.isfinite(a), finite):
        return float("inf")
    return C.max_rel_err(a[finite], b[finite], floor=0.0) if finite.any() else 0.0


def measure(solver, sensitivity, kind, options, order, rounds, max_saved_steps=None) -> dict:
    """One program compiled with each of ``options`` (two named sets) in ``order``, then run interleaved."""
    a, b = options
    fn, arg = program(solver, sensitivity, kind, max_saved_steps)
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(arg)
    lower_s = time.perf_counter() - start
    compiled, compile_s, outs = {}, {}, {}
    for name in order:
        start = time.perf_counter()
        compiled[name] = lowered.compile(compiler_options=options[name])
        compile_s[name] = time.perf_counter() - start
        outs[name] = jax.device_get(compiled[name](arg))
    calls = {name: (lambda c=compiled[name]: jax.block_until_ready(c(arg))) for name in compiled}
    times = C.time_interleaved(calls, rounds=rounds, budget_s=20.0, per_call_s=2.0, shuffle_seed=len(sensitivity))
    status = sorted({pss.ReturnCode(int(s)).name for s in np.ravel(outs[a]["status"])})
    return {
        "solver": solver, "sensitivity": sensitivity, "kind": kind, "trace_lower_s": lower_s,
        f"compile_{a}_s": compile_s[a], f"compile_{b}_s": compile_s[b],
        f"run_{a}_s": C.median(times[a]), f"run_{b}_s": C.median(times[b]),
        "rounds": min(len(t) for t in times.values()),
        "max_rel_diff": rel_diff(outs[a]["grad"], outs[b]["grad"]),
        "status": "/".join(status),
    }


def trace_lower(solver, sensitivity, kind, max_saved_steps=None) -> dict:
    """The time to trace and lower one program (``jax.jit(fn).lower(arg)``), which is not compiled."""
    fn, arg = program(solver, sensitivity, kind, max_saved_steps)
    start = time.perf_counter()
    jax.jit(fn).lower(arg)
    return {"solver": solver, "sensitivity": sensitivity, "kind": kind, "trace_lower_s": time.perf_counter() - start}


def trace_report(rows) -> str:
    table = [[r["solver"], r["sensitivity"], r["kind"], f"{r['trace_lower_s']:.2f}"] for r in rows]
    lines = [C.markdown_table(["solver", "sensitivity", "kind", "trace + lower s"], table), ""]
    for kind in ("single", "batch"):
        part = [r["trace_lower_s"] for r in rows if r["kind"] == kind]
        if part:
            lines.append(f"- {kind} ({len(part)} programs): {sum(part):.1f} s in all")
    return "\n".join(lines)


def geomean(xs) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return float(np.exp(np.mean(np.log(xs)))) if xs else float("nan")


def report(rows, a: str, b: str) -> str:
    headers = ["solver", "sensitivity", "kind", "trace + lower s", f"compile {a} s", f"compile {b} s", "ratio",
               f"run {a} ms", f"run {b} ms", "ratio", "max rel. diff", "status"]
    table = [[r["solver"], r["sensitivity"], r["kind"], f"{r['trace_lower_s']:.2f}", f"{r[f'compile_{a}_s']:.2f}",
              f"{r[f'compile_{b}_s']:.2f}", f"{r[f'compile_{a}_s'] / r[f'compile_{b}_s']:.2f}",
              f"{1e3 * r[f'run_{a}_s']:.2f}", f"{1e3 * r[f'run_{b}_s']:.2f}",
              f"{r[f'run_{a}_s'] / r[f'run_{b}_s']:.2f}", f"{r['max_rel_diff']:.1e}", r["status"]] for r in rows]
    lines = [C.markdown_table(headers, table), ""]
    for kind in ("single", "batch"):
        part = [r for r in rows if r["kind"] == kind]
        if not part:
            continue
        total_a, total_b = sum(r[f"compile_{a}_s"] for r in part), sum(r[f"compile_{b}_s"] for r in part)
        run_ratios = [r[f"run_{a}_s"] / r[f"run_{b}_s"] for r in part]
        lines.append(
            f"- {kind} ({len(part)} programs): compile {total_a:.1f} s {a} against {total_b:.1f} s {b} "
            f"(ratio {total_a / total_b:.2f}); run-time ratio {a}/{b}: geometric mean "
            f"{geomean(run_ratios):.2f}, range {min(run_ratios):.2f}-{max(run_ratios):.2f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solvers", nargs="+", default=list(ADAPTIVE + FIXED))
    parser.add_argument("--sensitivities", nargs="+", default=pss.sensitivity.names())
    parser.add_argument("--no-batch", action="store_true", help="single calls only")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-saved-steps", type=int, default=None,
                        help="one step-record length instead of make_gradient_fn's default ladder")
    parser.add_argument("--disable-pass", choices=_xla.FAST_COMPILE_DISABLED_PASSES, default=None,
                        help="compare the default options with the same without this pass, instead of with "
                             "PYSTIFFSENS_FAST_COMPILE's options")
    parser.add_argument("--trace-only", action="store_true", help="trace and lower each program, without compiling it")
    parser.add_argument("--csv", default=None, help="default: benchmarks/results/compile.csv, compile_passes.csv with "
                                                    "--disable-pass, trace_lower.csv with --trace-only")
    args = parser.parse_args(argv)
    name = "trace_lower" if args.trace_only else "compile" if args.disable_pass is None else "compile_passes"
    csv = args.csv or os.path.join(C.ROOT, "benchmarks", "results", f"{name}.csv")

    cases = [(s, a, "single") for s in args.solvers for a in args.sensitivities]
    if not args.no_batch:
        cases += [(s, a, "batch") for s in args.solvers if s in ADAPTIVE
                  for a in args.sensitivities if a in BATCH_SENSITIVITIES]
    if args.trace_only:
        rows = []
        for i, (solver, sensitivity, kind) in enumerate(cases):
            rows.append(trace_lower(solver, sensitivity, kind, args.max_saved_steps))
            C.progress(f"[{i + 1}/{len(cases)}] {solver} {sensitivity} {kind}: {rows[-1]['trace_lower_s']:.2f} s")
        C.write_rows(csv, rows, ["solver", "sensitivity", "kind", "trace_lower_s"])
        print("\n".join(C.machine_info()))
        print(trace_report(rows))
        print(f"\nCSV: {os.path.relpath(csv, C.ROOT)}")
        return

    options = variants(args.disable_pass)
    a, b = options
    rows = []
    for i, (solver, sensitivity, kind) in enumerate(cases):
        order = [a, b] if i % 2 == 0 else [b, a]
        rows.append(measure(solver, sensitivity, kind, options, order, args.rounds, args.max_saved_steps))
        r = rows[-1]
        C.progress(f"[{i + 1}/{len(cases)}] {solver} {sensitivity} {kind}: compile {r[f'compile_{a}_s']:.1f} / "
                   f"{r[f'compile_{b}_s']:.1f} s, run {1e3 * r[f'run_{a}_s']:.1f} / {1e3 * r[f'run_{b}_s']:.1f} ms")
    C.write_rows(csv, rows, fields(a, b))
    print("\n".join(C.machine_info()))
    print(f"- options: {a} = {options[a]}; {b} = {options[b]}")
    print(f"- step records: max_saved_steps={args.max_saved_steps} "
          f"({'the default ladder of record lengths' if args.max_saved_steps is None else 'one length'})")
    print(f"- caches: PYSTIFFSENS_NO_COMPILATION_CACHE={os.environ['PYSTIFFSENS_NO_COMPILATION_CACHE']}\n")
    print(report(rows, a, b))
    print(f"\nCSV: {os.path.relpath(csv, C.ROOT)}")


if __name__ == "__main__":
    main()
