"""SBML program layouts (``pystiffsens.sbml``, ``layout="scalar"`` and ``"vectorised"``): size, compile time, run time.

    python benchmarks/bench_sbml_layouts.py --collection Benchmark-Models-PEtab/Benchmark-Models \
        --models Boehm_JProteomeRes2014 Lucarelli_CellSystems2018 --programs
    python benchmarks/bench_sbml_layouts.py --collection ... --models Chen_MSB2009

Per model and layout, each in a child process of its own (so that nothing is shared between
layouts and a slow compile is a timeout row): the jaxpr size of the right-hand side, the time
of one evaluation of the right-hand side and of its Jacobian inside a compiled loop of 20 (the
loop keeps XLA from timing dispatch) with the compile time of each loop: the Jacobian by
``jax.jacfwd`` (one product per state) and from the model's sparsity pattern (one product per
colour, what the implicit solvers form once per step; :mod:`pystiffsens.sparsity`), the time of a dense LU factorisation of the
model's size and of a solve with it, and of the sparse LU the solvers use for the model's pattern
(:mod:`pystiffsens.solvers.sparse_lu`, where it applies: its fill, levels, compile time, factorisation
and solve); with ``--programs`` also the trace, lowering and
compilation time of the nllh and of its gradient (ReverseDiffAdjoint; the program
``problem.gradient`` compiles first, with its short step records) with Rodas5P at rtol
1e-8, atol 1e-10, and the median of 5 warm calls of each; with ``--solve-steps N`` the first
simulation condition solved alone (``pss.solve`` of ``problem.problem(condition)``, the same
solver and tolerances) for at most N steps: its steps, the warm time and the last time it
reached. Writes ``results/sbml_layouts.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common
from bench_petab import problem_file

from pystiffsens.sbml.jaxify import LAYOUTS

RESULTS = Path(__file__).parent / "results"
LOOP = 20


def _in_loop(fn, *args) -> tuple[float, float]:
    """(compile and first call s, ms per iteration of ``fn`` inside a compiled loop of LOOP)."""
    import jax

    compiled = jax.jit(fn)
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return first, 1e3 * min(times) / LOOP


def one(path: Path, layout: str, programs: bool, solve_steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    import pystiffsens as pss
    import pystiffsens.petab as petab
    from pystiffsens.petab.problem import short_records
    from pystiffsens.solvers import sparse_lu
    from pystiffsens.solvers.linear import lu_factor
    from pystiffsens.sparsity import jacobian

    start = time.perf_counter()
    problem = petab.load(problem_file(path), layout=layout)
    row = {"model": path.name, "layout": layout, "load_s": time.perf_counter() - start}
    model = problem.model
    p = problem._resolved(model.defaults)
    y = jnp.asarray(model.initial_state(p)) + 0.1  # away from zeros, so that no product is trivially 0
    n = y.size
    row |= {"states": n, "formulas": len(model._t.definitions),
            "rhs_ops": len(jax.make_jaxpr(lambda y: model.rhs(0.0, y, p))(y).jaxpr.eqns)}
    row["rhs_first_s"], row["rhs_ms"] = _in_loop(
        lambda y, p: lax.fori_loop(0, LOOP, lambda i, y: y + 1e-12 * model.rhs(0.0, y, p), y), y, p)
    row["jacobian_first_s"], row["jacobian_ms"] = _in_loop(lambda y, p: lax.fori_loop(
        0, LOOP, lambda i, y: y + 1e-12 * jax.jacfwd(lambda y: model.rhs(0.0, y, p))(y).sum(0), y), y, p)
    pattern = model.jacobian_sparsity
    row["jacobian_colors"] = pattern.n_colors
    row["sparse_jacobian_first_s"], row["sparse_jacobian_ms"] = _in_loop(lambda y, p: lax.fori_loop(
        0, LOOP, lambda i, y: y + 1e-12 * jacobian(lambda y: model.rhs(0.0, y, p), y, pattern).sum(0), y), y, p)
    matrix = jnp.eye(n) + 0.01 * jax.random.normal(jax.random.PRNGKey(0), (n, n))
    _, row["lu_ms"] = _in_loop(lambda a: lax.fori_loop(0, LOOP, lambda i, a: a + 1e-12 * lax.linalg.lu(a)[0], a),
                               matrix)
    lu = lu_factor(matrix)
    _, row["lu_solve_ms"] = _in_loop(lambda b: lax.fori_loop(0, LOOP, lambda i, b: b + 1e-12 * lu.solve(b), b), y)
    planned = sparse_lu.elimination(pattern)
    if planned is not None:  # the sparse LU the solvers use for this pattern (the same matrix, zero outside it)
        on_pattern = jnp.where(pattern.with_identity.mask, matrix, 0.0)
        row |= {"sparse_lu_fill": planned.fill, "sparse_lu_levels": len(planned.levels)}
        row["sparse_lu_first_s"], row["sparse_lu_ms"] = _in_loop(lambda a: lax.fori_loop(
            0, LOOP, lambda i, a: a + 1e-12 * lu_factor(a, sparsity=pattern).factors, a), on_pattern)
        lu = lu_factor(on_pattern, sparsity=pattern)
        _, row["sparse_lu_solve_ms"] = _in_loop(
            lambda b: lax.fori_loop(0, LOOP, lambda i, b: b + 1e-12 * lu.solve(b), b), y)
    if solve_steps:
        plain = problem.problem(problem.conditions[0])
        solve = lambda: pss.solve(plain, "Rodas5P", rtol=1e-8, atol=1e-10, max_steps=solve_steps)  # noqa: E731
        solve()
        start = time.perf_counter()
        sol = solve()
        row |= {"solve_s": time.perf_counter() - start, "solve_status": sol.status.name,
                "solve_steps": int(sol.stats["n_steps"]), "solve_t_end": plain.tspan[1],
                "solve_t_reached": float(np.max(np.where(np.isfinite(sol.ys).all(axis=1), sol.ts, plain.tspan[0])))}
    if programs:
        x = problem._vector(None)
        for kind, sensitivity in (("nllh", None), ("gradient", "ReverseDiffAdjoint")):
            records = short_records(100_000) if sensitivity else None  # as problem.gradient compiles it first
            fn = problem._nllh_fn("Rodas5P", sensitivity, 1e-8, 1e-10, 100_000, records)
            fn = fn if kind == "nllh" else jax.value_and_grad(fn, has_aux=True)
            start = time.perf_counter()
            traced = jax.jit(fn).trace(x)
            row[f"{kind}_trace_s"] = time.perf_counter() - start
            start = time.perf_counter()
            lowered = traced.lower()
            row[f"{kind}_lower_s"] = time.perf_counter() - start
            start = time.perf_counter()
            compiled = lowered.compile()
            row[f"{kind}_compile_s"] = time.perf_counter() - start
            jax.block_until_ready(compiled(x))
            times = []
            for _ in range(5):
                start = time.perf_counter()
                jax.block_until_ready(compiled(x))
                times.append(time.perf_counter() - start)
            row[f"{kind}_ms"] = 1e3 * statistics.median(times)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", type=Path, required=True, help="the Benchmark-Models folder of a clone")
    parser.add_argument("--models", nargs="+", default=[])
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    parser.add_argument("--programs", action="store_true", help="also compile and time the nllh and gradient")
    parser.add_argument("--solve-steps", type=int, default=0, help="also solve the first condition for this many steps")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per model and layout")
    parser.add_argument("--out", type=Path, default=RESULTS / "sbml_layouts.csv")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # model, layout: run here, print the row
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.collection / args.one[0], args.one[1], args.programs, args.solve_steps)))
        return 0
    print("\n".join(_common.machine_info()))
    rows = []
    for name in args.models:
        for layout in args.layouts:
            _common.progress(f"{name}, {layout}")
            command = [sys.executable, __file__, "--collection", str(args.collection), "--one", name, layout,
                       "--solve-steps", str(args.solve_steps), *(["--programs"] if args.programs else [])]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout,
                                      env={"PYSTIFFSENS_NO_COMPILATION_CACHE": "1", **os.environ})
                lines = done.stdout.strip().splitlines()
                row = json.loads(lines[-1]) if done.returncode == 0 and lines else {
                    "model": name, "layout": layout, "status": f"crashed: {done.stderr.strip().splitlines()[-1:]}"}
            except subprocess.TimeoutExpired:
                row = {"model": name, "layout": layout, "status": f"timeout after {args.timeout:g} s"}
            rows.append(row)
            _common.write_rows(str(args.out), rows, list(dict.fromkeys(key for row in rows for key in row)))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print(_common.markdown_table(columns, [[_common.fmt(row.get(c)) for c in columns] for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
