"""Solver benchmark (issue 2): ROBER, HIRES and Van der Pol with every pystiffsens solver,
CasADi/CVODES and diffrax; wall time after compilation, compile time, steps and error.

Run: ``python benchmarks/bench_solvers.py`` (needs ``pip install -e .[bench]``). Prints
Markdown (machine, table, target verdicts) on stdout and progress on stderr. About 2-3
minutes on 2 shared cores. Options: ``--problems ROBER HIRES``, ``--no-fixed``,
``--rounds N``.

What is timed
-------------
* pystiffsens: the compiled program ``pss.solve`` runs (``pystiffsens.programs.solve``:
  the integration loop with per-step state recording into records of the length
  ``pss.solve`` settles at for the problem, ``pss.jit``-compiled here by
  ``_common.solve_program``), called with ``block_until_ready``; the "pss.solve()" column
  is the whole API call (adds argument checks, the program lookup and the conversion of
  the recorded steps to NumPy). "compile" = first call minus the median call.
* CasADi: ``F(x0=..., p=...)`` of ``casadi.integrator('F', 'cvodes', ...)`` (BDF, Newton,
  CasADi's default dense linear solver, exact Jacobian by CasADi AD); "compile" = building
  the integrator plus the first call minus the median call (no code generation).
* diffrax: ``jax.jit`` of ``diffeqsolve(..., SaveAt(t1=True), PIDController(rtol, atol))``.
Every method gets rtol=1e-8, atol=1e-10 and max_steps=100_000 unless its row says
otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import pystiffsens as pss  # noqa: E402  (enables float64)

RTOL, ATOL = 1e-8, 1e-10
MAX_STEPS = 100_000
ADAPTIVE = [n for n in pss.solvers.names() if pss.solvers.get(n).adaptive]
FIXED = pss.solvers.fixed_step_names()

#: problem label -> (factory, fixed step for the fixed-step references or None, why not)
PROBLEMS = {
    "ROBER": (lambda: pss.problems.get("robertson", t_end=1e5), None,
              "fixed steps over [0, 1e5] are meaningless (transient ~1e-7, horizon 1e5)"),
    "HIRES": (lambda: pss.problems.get("hires"), 0.01, None),
    "VdP": (lambda: pss.problems.get("van_der_pol", mu=1e3, t_end=2.0), 1e-4, None),
}


# ----------------------------------------------------------------------------- CasADi
def casadi_ode(label, x, p):
    import casadi as ca

    if label == "ROBER":
        r1, r2, r3 = p[0] * x[0], p[1] * x[1] ** 2, p[2] * x[1] * x[2]
        return ca.vertcat(-r1 + r3, r1 - r2 - r3, r2)
    if label == "HIRES":
        c, y = p, x
        r = c[9] * y[5] * y[7]
        return ca.vertcat(
            -c[0] * y[0] + c[1] * y[1] + c[2] * y[2] + c[3],
            c[0] * y[0] - c[4] * y[1],
            -c[5] * y[2] + c[1] * y[3] + c[6] * y[4],
            c[2] * y[1] + c[0] * y[2] - c[7] * y[3],
            -c[8] * y[4] + c[1] * y[5] + c[1] * y[6],
            -r + c[10] * y[3] + c[0] * y[4] - c[1] * y[5] + c[10] * y[6],
            r - c[11] * y[6],
            -r + c[11] * y[6],
        )
    if label == "VdP":
        return ca.vertcat(x[1], p[0] * ((1 - x[0] ** 2) * x[1] - x[0]))
    raise ValueError(label)


def param_vector(problem):
    from jax.flatten_util import ravel_pytree

    return np.asarray(ravel_pytree(problem.params)[0])


def casadi_integrator(label, problem, rtol, atol, **extra):
    import casadi as ca

    n, m = problem.y0.size, param_vector(problem).size
    x, p = ca.SX.sym("x", n), ca.SX.sym("p", m)
    dae = {"x": x, "p": p, "ode": casadi_ode(label, x, p)}
    opts = {"abstol": atol, "reltol": rtol, "max_num_steps": MAX_STEPS, **extra}
    return ca.integrator("F", "cvodes", dae, float(problem.tspan[0]), float(problem.tspan[1]), opts)


# ----------------------------------------------------------------------------- diffrax
def diffrax_kencarp4_works():
    """diffrax's KenCarp4 needs MultiTerm(explicit, implicit); check that the fully implicit
    use MultiTerm(0, f) solves y' = -y before timing it."""
    import diffrax as dfx

    term = dfx.MultiTerm(dfx.ODETerm(lambda t, y, a: jnp.zeros_like(y)), dfx.ODETerm(lambda t, y, a: -y))
    sol = dfx.diffeqsolve(term, dfx.KenCarp4(), 0.0, 1.0, None, jnp.ones(1), saveat=dfx.SaveAt(t1=True),
                          stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8), max_steps=2000, throw=False)
    ok = bool(sol.result == dfx.RESULTS.successful) and abs(float(sol.ys[0, 0]) - np.exp(-1)) < 1e-4
    return ok, f"{sol.result}; y(1) = {float(sol.ys[0, 0]):.6f} (exact {np.exp(-1):.6f}); stats {dict((k, int(v)) for k, v in sol.stats.items())}"


def diffrax_solver(name, f):
    import diffrax as dfx

    if name == "KenCarp4":
        return dfx.MultiTerm(dfx.ODETerm(lambda t, y, a: jnp.zeros_like(y)), dfx.ODETerm(f)), dfx.KenCarp4()
    return dfx.ODETerm(f), getattr(dfx, name)()


def diffrax_solve_fn(name, problem, rtol, atol):
    import diffrax as dfx

    term, solver = diffrax_solver(name, lambda t, y, args: problem.rhs(t, y, args))
    t0, t1 = problem.tspan

    @jax.jit
    def run(y0, params):
        sol = dfx.diffeqsolve(
            term, solver, t0, t1, None, y0, args=params, saveat=dfx.SaveAt(t1=True),
            stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol), max_steps=MAX_STEPS, throw=False,
        )
        return sol.ys[-1], sol.stats, sol.result == dfx.RESULTS.successful

    y0, params = jnp.asarray(problem.y0), problem.params
    return lambda: jax.block_until_ready(run(y0, params))


# ----------------------------------------------------------------------------- rows
class Row:
    def __init__(self, method, call, first, extract, api=None, setup_s=0.0, note=""):
        first_out, self.first_s, self.first_cpu = first
        self.method, self.call, self.api, self.note = method, call, api, note
        self.setup_s = setup_s
        self.y, self.steps, self.n_f, self.jac_lu, self.status = extract(first_out)
        self.times, self.api_times = [], []


def pss_row(problem, solver, dt, tol=(RTOL, ATOL), method=None, record=True):
    # record: the records pss.solve keeps by default; else the bare loop (pss.solve(..., save_steps=False))
    run, args, _ = C.solve_program(problem, solver, rtol=tol[0], atol=tol[1], dt=dt, max_steps=MAX_STEPS,
                                   saved_steps=None if record else 0)
    call = lambda: jax.block_until_ready(run(*args))
    first = C.first_call(call)

    def extract(out):
        ys, info = out[0], C.solve_info(out[1])
        return (np.asarray(ys)[-1], f"{info['n_steps']}/{info['n_rejected']}", info["n_f"],
                f"{info['n_jac']}/{info['n_lu']}", pss.ReturnCode(info["status"]).name)

    api = None
    if record:
        api = lambda: pss.solve(problem, solver, rtol=tol[0], atol=tol[1], dt=dt, max_steps=MAX_STEPS)
    label = method or (f"pss {solver}" + (f" (dt={dt:g})" if dt is not None else ""))
    return Row(label, call, first, extract, api=api)


def casadi_row(label, problem, tol=(RTOL, ATOL), method=None):
    t = time.perf_counter()
    F = casadi_integrator(label, problem, *tol)
    build = time.perf_counter() - t
    x0, p0 = problem.y0.tolist(), param_vector(problem).tolist()

    def call():
        try:
            return F(x0=x0, p=p0)
        except RuntimeError as e:  # CVODES failures raise
            return e

    with C.quiet_fds():
        first = C.first_call(call)

    def extract(res):
        if isinstance(res, Exception):
            lines = str(res).splitlines()
            why = next((l.split(": ", 1)[-1] for l in lines if "returned" in l), lines[0])
            return np.full(problem.y0.size, np.nan), "–", "–", "–", f"failed: {why[:70]}"
        st = F.stats()
        return (np.asarray(res["xf"]).ravel(), f"{st['nsteps']}/{st['netfails']}", st["nfevals"],
                f"{st['n_call_jacF']}/{st['nlinsetups']}", "Success" if st.get("success", True) else "failed")

    return Row(method or "CasADi CVODES", call, first, extract, setup_s=build)


def diffrax_row(name, problem, note=""):
    call = diffrax_solve_fn(name, problem, RTOL, ATOL)
    first = C.first_call(call)

    def extract(o):
        y, stats, ok = o
        return (np.asarray(y), f"{int(stats['num_accepted_steps'])}/{int(stats['num_rejected_steps'])}", "–", "–",
                "Success" if bool(ok) else "failed")

    return Row(f"diffrax {name}", call, first, extract, note=note)


def reference(problem):
    fun, jac = C.numpy_rhs(problem.rhs, problem.params)
    y_ref, sol = C.radau(fun, jac, problem.y0, problem.tspan, rtol=1e-12, atol=1e-15)
    check = pss.solve(problem, "Rodas5P", rtol=1e-12, atol=1e-16)
    return y_ref, C.max_rel_err(check.ys[-1], y_ref), len(sol.t)


HIRES_IVPTESTSET = np.array([
    0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4, 0.1175651343283149e-2,
    0.2386356198831331e-2, 0.6238968252742796e-2, 0.2849998395185769e-2, 0.2850001604814231e-2,
])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--no-fixed", action="store_true", help="skip the fixed-step references")
    ap.add_argument("--rounds", type=int, default=15, help="timing rounds (median reported)")
    ap.add_argument("--budget", type=float, default=10.0, help="seconds of timing rounds per problem")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()

    print("# pystiffsens solver benchmark\n")
    print("\n".join(C.machine_info()))
    print(f"- tolerances rtol={RTOL:g}, atol={ATOL:g}; max_steps={MAX_STEPS}; median of up to {args.rounds} "
          f"interleaved rounds")

    kc4_ok, kc4_msg = diffrax_kencarp4_works()
    C.progress(f"diffrax KenCarp4 sanity check: {'ok' if kc4_ok else 'FAILED'}: {kc4_msg}")
    diffrax_names = ["Kvaerno5", "KenCarp4" if kc4_ok else "Kvaerno4"]

    headers = ["problem", "method", "run ms (median)", "min ms", "pss.solve() ms", "compile s wall (CPU)",
               "steps acc/rej", "n_f", "n_jac/n_LU", "max rel err", "err/tol", "status"]
    table_rows, ref_notes, results = [], [], {}
    for label in args.problems:
        factory, dt, why_no_fixed = PROBLEMS[label]
        problem = factory()
        C.progress(f"{label}: reference")
        y_ref, ref_check, ref_steps = reference(problem)
        note = f"- {label}: reference scipy Radau (rtol 1e-12, atol 1e-15, {ref_steps} steps); pss Rodas5P at rtol 1e-12/atol 1e-16 differs from it by {ref_check:.1e} (max rel)"
        if label == "HIRES":
            note += f"; IVP test set reference differs by {C.max_rel_err(HIRES_IVPTESTSET, y_ref):.1e}"
        ref_notes.append(note)

        rows = []
        for s in ADAPTIVE:
            C.progress(f"{label}: pss {s}")
            rows.append(pss_row(problem, s, None))
        if label == "ROBER":
            C.progress(f"{label}: pss Rodas5P bare loop")
            rows.append(pss_row(problem, "Rodas5P", None, record=False,
                                method="pss Rodas5P, bare loop (no state recording)"))
        if dt is not None and not args.no_fixed:
            for s in FIXED:
                C.progress(f"{label}: pss {s} dt={dt}")
                rows.append(pss_row(problem, s, dt))
        C.progress(f"{label}: CasADi")
        rows.append(casadi_row(label, problem))
        rows.append(casadi_row(label, problem, tol=(1e-10, 1e-12), method="CasADi CVODES (rtol 1e-10, atol 1e-12)"))
        rows.append(pss_row(problem, "Rodas5P", None, tol=(1e-6, 1e-8), method="pss Rodas5P (rtol 1e-6, atol 1e-8)"))
        for name in diffrax_names:
            C.progress(f"{label}: diffrax {name}")
            rows.append(diffrax_row(name, problem))

        C.progress(f"{label}: timing")
        calls = {r.method: r.call for r in rows if not r.status.startswith("failed:")}  # raised failures: not timed
        calls.update({r.method + " [api]": r.api for r in rows if r.api is not None})
        times = C.time_interleaved(calls, rounds=args.rounds, budget_s=args.budget)
        for r in rows:
            r.times = times.get(r.method, [float("nan")])
            r.api_times = times.get(r.method + " [api]", [])
            med = C.median(r.times)
            compile_s = r.setup_s + max(r.first_s - med, 0.0)
            compile_cpu = r.setup_s + max(r.first_cpu - min(r.times), 0.0)
            tol = (RTOL, ATOL)
            if "rtol 1e-6" in r.method:
                tol = (1e-6, 1e-8)
            elif "rtol 1e-10" in r.method:
                tol = (1e-10, 1e-12)
            err, serr = C.max_rel_err(r.y, y_ref), C.tol_scaled_err(r.y, y_ref, *tol)
            results[(label, r.method)] = dict(ms=1e3 * med, min_ms=1e3 * min(r.times), compile=compile_s,
                                              compile_cpu=compile_cpu, err=err, status=r.status)
            table_rows.append([
                label, r.method, C.fmt(1e3 * med, ".3g"), C.fmt(1e3 * min(r.times), ".3g"),
                C.fmt(1e3 * C.median(r.api_times), ".3g") if r.api_times else "–", f"{C.fmt(compile_s, '.1f')} ({C.fmt(compile_cpu, '.1f')})",
                r.steps, r.n_f, r.jac_lu, C.fmt(err, ".1e"), C.fmt(serr, ".2g"), r.status,
            ])
        if dt is None:
            ref_notes.append(f"- {label}: fixed-step references ({', '.join(FIXED)}) left out: {why_no_fixed}")
        else:
            ref_notes.append(f"- {label}: fixed-step references use dt={dt:g} (rtol/atol only set their Newton tolerance)")

    C.banner("Results")
    print(C.markdown_table(headers, table_rows))
    print()
    print("\n".join(ref_notes))
    print("- error: max relative error over components with |y_ref| > 1e-12 at the final time; "
          "err/tol = max_i |y_i - ref_i| / (atol + rtol |ref_i|) with the row's tolerances")
    if not kc4_ok:
        print(f"- diffrax KenCarp4 not timed: it rejects a single ODETerm (needs MultiTerm(explicit, implicit)), and "
              f"the fully implicit MultiTerm(0, f) fails a y' = -y sanity check here ({kc4_msg}); "
              f"diffrax Kvaerno4 (ESDIRK, order 4) is timed instead")

    C.banner("Targets")
    verdict = lambda ok: "**met**" if ok else "**not met**"
    rob = lambda m: results.get(("ROBER", m))
    r5, cv, kv = rob("pss Rodas5P"), rob("CasADi CVODES"), rob("diffrax Kvaerno5")
    if r5 and cv:
        ratio = r5["ms"] / cv["ms"]
        print(f"- Rodas5P on ROBER at most 1.0x CVODES's time: {r5['ms']:.3g} ms vs {cv['ms']:.3g} ms = "
              f"{ratio:.2f}x (ratio of minimum times {r5['min_ms'] / cv['min_ms']:.2f}x) -> {verdict(ratio <= 1.0)} "
              f"(errors {r5['err']:.1e} vs {cv['err']:.1e})")
    if r5 and kv:
        ratio = kv["ms"] / r5["ms"]
        print(f"- Rodas5P on ROBER at least 5x faster than diffrax Kvaerno5: {kv['ms']:.3g} ms / {r5['ms']:.3g} ms = "
              f"{ratio:.1f}x (ratio of minimum times {kv['min_ms'] / r5['min_ms']:.1f}x) -> {verdict(ratio >= 5.0)}")
    comp = {(l, m): v for (l, m), v in results.items() if m.startswith("pss ") and "rtol 1e-6" not in m}
    if comp:
        wall = {k: v["compile"] for k, v in comp.items()}
        cpu = {k: v["compile_cpu"] for k, v in comp.items()}
        worst = max(wall, key=wall.get)
        print(f"- compile time at most 3 s per solver (2 shared cores): wall max {wall[worst]:.1f} s ({worst[1]} on "
              f"{worst[0]}), median {np.median(list(wall.values())):.1f} s, {sum(v <= 3.0 for v in wall.values())}/"
              f"{len(wall)} within 3 s -> {verdict(wall[worst] <= 3.0)}; process CPU time max {max(cpu.values()):.1f} s, "
              f"median {np.median(list(cpu.values())):.1f} s, {sum(v <= 3.0 for v in cpu.values())}/{len(cpu)} within 3 s")
    print(f"- load average at end: {C.load():.1f}; total run time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
