"""Gradient benchmark (issue 3): d/dk of the ROBER loss sum(y(1e5)) + 1e4*y2(1e5) with
every pystiffsens sensitivity algorithm, CasADi/CVODES (forward and adjoint) and diffrax
(RecursiveCheckpointAdjoint); plus the compiled memory of ReverseDiffAdjoint against the
forward solve on a ~1e4-step Van der Pol solve.

Run: ``python benchmarks/bench_gradients.py`` (needs ``pip install -e .[bench]``). Prints
Markdown on stdout, progress on stderr; about 2-3 minutes on 2 shared cores. Options:
``--no-fd`` (skip the finite-difference cross-check of the reference), ``--no-memory``,
``--rounds N``, ``--solver NAME`` (the pystiffsens solver, default Rodas5P).

What is timed (after compilation, median of interleaved rounds)
---------------------------------------------------------------
* pystiffsens: ``pss.gradient(problem, solver, algorithm, rtol=1e-8, atol=1e-10)``
  (loss and gradient: the whole call, whose compiled program the JAX backend keeps per
  problem structure, ``pystiffsens.backends.native``); "compile" = first call minus the
  median call.
* CasADi: one call of an MX function returning the loss and its gradient through
  ``casadi.integrator('F', 'cvodes', ...)``: forward mode = ``jtimes(L, p, I, False)``
  (3 forward directions: CVODES integrates the forward sensitivity equations), adjoint
  = ``jtimes(L, p, 1, True)`` (one reverse direction: CVODES's adjoint, a backward
  solve with checkpoints). "compile" = building the functions plus first call minus median.
* diffrax: ``jax.jit(jax.value_and_grad(loss))`` with ``diffeqsolve(...,
  adjoint=RecursiveCheckpointAdjoint(), max_steps=100_000)``.
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
from bench_solvers import casadi_integrator, diffrax_kencarp4_works, diffrax_solver  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import pystiffsens as pss  # noqa: E402

RTOL, ATOL = 1e-8, 1e-10
MAX_STEPS = 100_000
SOLVER = "Rodas5P"
NAMES = ["k1", "k2", "k3"]


def rober():
    return pss.problems.get("robertson", t_end=1e5)


# ----------------------------------------------------------------------------- reference
def sensitivity_reference(problem, rtol=1e-12, atol=1e-15):
    """Gradient from scipy Radau on the forward sensitivity system.

    Integrates y and the scaled sensitivities S_j = theta_j dy/dtheta_j (O(|y|), so one
    absolute tolerance fits all) with an exact Jacobian, then
    dL/dtheta_j = dL/dy(T) . S_j(T) / theta_j + dL/dtheta_j|explicit.
    """
    theta, unravel = ravel_pytree(problem.params)
    n, m = problem.y0.size, theta.size
    f = lambda t, y, th: problem.rhs(t, y, unravel(th))

    def aug(t, z):
        y, S = z[:n], z[n:].reshape(n, m)
        J = jax.jacfwd(f, argnums=1)(t, y, theta)
        Fp = jax.jacfwd(f, argnums=2)(t, y, theta)
        return jnp.concatenate([f(t, y, theta), (J @ S + Fp * theta[None, :]).ravel()])

    fa, ja = jax.jit(aug), jax.jit(jax.jacfwd(aug, argnums=1))
    z0 = np.concatenate([problem.y0, np.zeros(n * m)])
    zT, sol = C.radau(lambda t, z: np.asarray(fa(t, z)), lambda t, z: np.asarray(ja(t, z)), z0, problem.tspan,
                      rtol=rtol, atol=atol)
    yT, S = zT[:n], zT[n:].reshape(n, m)
    ts = jnp.asarray(problem.saveat)
    loss_of = lambda ys, th: problem.loss_fn(ts, ys, unravel(th))
    g_y, g_th = jax.grad(loss_of, argnums=(0, 1))(jnp.asarray(yT)[None, :], theta)
    grad = np.asarray(g_y[-1]) @ S / np.asarray(theta) + np.asarray(g_th)
    return float(loss_of(jnp.asarray(yT)[None, :], theta)), grad, len(sol.t)


def fd_reference(problem, rel=1e-4, rtol=1e-10, atol=1e-13):
    """Central differences of Radau solves (relative step ``rel`` on each parameter)."""
    theta, unravel = ravel_pytree(problem.params)
    ts = jnp.asarray(problem.saveat)
    out = []
    for j in range(theta.size):
        vals = []
        for sign in (+1, -1):
            th = np.asarray(theta).copy()
            th[j] *= 1 + sign * rel
            params = unravel(jnp.asarray(th))
            fun, jac = C.numpy_rhs(problem.rhs, params)
            yT, _ = C.radau(fun, jac, problem.y0, problem.tspan, rtol=rtol, atol=atol)
            vals.append(float(problem.loss_fn(ts, jnp.asarray(yT)[None, :], params)))
        out.append((vals[0] - vals[1]) / (2 * rel * float(theta[j])))
    return np.array(out)


# ----------------------------------------------------------------------------- methods
class Row:
    def __init__(self, method, call, extract, setup_s=0.0, tol=(RTOL, ATOL)):
        self.method, self.call, self.setup_s, self.tol = method, call, setup_s, tol
        with C.quiet_fds():  # CasADi prints failures from C++
            out, self.first_s, self.first_cpu = C.first_call(call)
        self.loss, self.grad, self.steps, self.status = extract(out)
        self.timed = not self.status.startswith("failed")  # a raised failure is not timed
        self.times = []


def pss_row(problem, algorithm, tol=(RTOL, ATOL), label=None):
    def call():
        return pss.gradient(problem, SOLVER, algorithm, rtol=tol[0], atol=tol[1], max_steps=MAX_STEPS)

    def extract(r):
        s = r.stats
        steps = f"{s['n_steps']}/{s['n_rejected']}"
        if "backward_n_steps" in s:
            steps += f" + back {s['backward_n_steps']}/{s['backward_n_rejected']}"
        return r.loss, np.array([float(r.grad[k]) for k in NAMES]), steps, r.status.name

    return Row(label or f"pss {SOLVER} + {algorithm}", call, extract, tol=tol)


def casadi_rows(problem, tol=(RTOL, ATOL), suffix="", modes=("forward sensitivities", "adjoint"), **opts):
    import casadi as ca

    t = time.perf_counter()
    F = casadi_integrator("ROBER", problem, *tol, **opts)
    P = ca.MX.sym("p", 3)
    xf = F(x0=ca.DM(problem.y0.tolist()), p=P)["xf"]
    L = ca.sum1(xf) + 1e4 * xf[1]
    fwd = ca.Function("grad_fwd", [P], [L, ca.jtimes(L, P, ca.DM.eye(3), False)])
    adj = ca.Function("grad_adj", [P], [L, ca.jtimes(L, P, ca.DM.ones(1, 1), True)])
    build = time.perf_counter() - t
    p0 = [float(problem.params[k]) for k in NAMES]
    F(x0=problem.y0.tolist(), p=p0)  # one primal solve, for its step counts
    st = F.stats()
    primal_steps = f"{st['nsteps']}/{st['netfails']} (primal solve)"
    rows = []
    for name, G in [(m, {"forward sensitivities": fwd, "adjoint": adj}[m]) for m in modes]:
        def call(G=G):
            try:
                return G(p0)
            except RuntimeError as e:
                return e

        def extract(out):
            if isinstance(out, Exception):
                lines = str(out).splitlines()
                why = next((l.split(": ", 1)[-1] for l in lines if "returned" in l), lines[0])
                return float("nan"), np.full(3, np.nan), "–", f"failed: {why[:70]}"
            return float(out[0]), np.asarray(out[1]).ravel(), primal_steps, "Success"

        rows.append(Row(f"CasADi CVODES {name}{suffix}", call, extract, setup_s=build / len(modes), tol=tol))
    return rows


def diffrax_row(name, problem):
    import diffrax as dfx

    term, solver = diffrax_solver(name, lambda t, y, args: problem.rhs(t, y, args))
    t0, t1 = problem.tspan
    y0 = jnp.asarray(problem.y0)

    def loss(params):
        sol = dfx.diffeqsolve(
            term, solver, t0, t1, None, y0, args=params, saveat=dfx.SaveAt(t1=True),
            stepsize_controller=dfx.PIDController(rtol=RTOL, atol=ATOL), max_steps=MAX_STEPS,
            adjoint=dfx.RecursiveCheckpointAdjoint(), throw=False,
        )
        y = sol.ys[-1]
        return jnp.sum(y) + 1e4 * y[1], (sol.stats, sol.result == dfx.RESULTS.successful)

    run = jax.jit(jax.value_and_grad(loss, has_aux=True))
    params = problem.params

    def extract(out):
        (val, (stats, ok)), g = out
        return (float(val), np.array([float(g[k]) for k in NAMES]),
                f"{int(stats['num_accepted_steps'])}/{int(stats['num_rejected_steps'])}", "Success" if bool(ok) else "failed")

    return Row(f"diffrax {name} + RecursiveCheckpointAdjoint", lambda: jax.block_until_ready(run(params)), extract)


# ----------------------------------------------------------------------------- memory
def memory_section(t_end=13.0, max_steps=10_000):
    """Compiled memory (XLA buffer assignment) of the forward solve and the gradients.

    Every program records ``max_steps`` steps (``max_saved_steps=max_steps``), so the
    records are of one length in all of them.
    """
    problem = pss.problems.get("van_der_pol", mu=1e3, t_end=t_end)
    tol = dict(rtol=RTOL, atol=ATOL, max_steps=max_steps)
    fns = {
        "forward solve, as pss.solve (per-step state recording)":
            C.solve_program(problem, SOLVER, **tol, saved_steps=max_steps)[:2],
        "forward solve, bare loop (no recording)": C.solve_program(problem, SOLVER, **tol, saved_steps=0)[:2],
    }
    for alg in ("ReverseDiffAdjoint", "ForwardDiffSensitivity"):
        fns[f"gradient, {alg}"] = (
            pss.jit(pss.make_gradient_fn(problem, SOLVER, alg, **tol, max_saved_steps=max_steps)), (problem.params,))
    rows, totals = [], {}
    for name, (fn, args) in fns.items():
        C.progress(f"memory: {name}")
        t = time.perf_counter()
        compiled = fn.lower(*args).compile()
        comp = time.perf_counter() - t
        m = compiled.memory_analysis()
        out, run_s, _ = C.first_call(lambda: jax.block_until_ready(compiled(*args)))
        if isinstance(out, dict):  # a gradient
            stats, status = out["stats"], out["status"]
        else:  # a solve: (ys, info, step_t, step_y)
            stats = C.solve_info(out[1])
            status = stats["status"]
        total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
        totals[name] = total
        mib = lambda b: f"{b / 2**10:.0f}"
        rows.append([name, mib(m.argument_size_in_bytes), mib(m.output_size_in_bytes), mib(m.temp_size_in_bytes),
                     mib(total), f"{int(stats['n_steps'])}/{int(stats['n_rejected'])}",
                     pss.ReturnCode(int(status)).name, f"{comp:.1f}", f"{1e3 * run_s:.0f}"])
    return problem, max_steps, rows, totals


def main(argv=None):
    global SOLVER
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-fd", action="store_true", help="skip the finite-difference cross-check")
    ap.add_argument("--no-memory", action="store_true", help="skip the compiled-memory comparison")
    ap.add_argument("--rounds", type=int, default=21, help="timing rounds (median reported)")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds of timing rounds")
    ap.add_argument("--solver", default=SOLVER, help=f"the pystiffsens solver (default {SOLVER})")
    args = ap.parse_args(argv)
    SOLVER = args.solver
    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()

    print("# pystiffsens gradient benchmark\n")
    print("\n".join(C.machine_info()))
    print(f"- ROBER on [0, 1e5], loss sum(y(T)) + 1e4*y2(T), gradient w.r.t. (k1, k2, k3); rtol={RTOL:g}, "
          f"atol={ATOL:g}, max_steps={MAX_STEPS}; pystiffsens solver {SOLVER}; median of up to {args.rounds} interleaved rounds")

    problem = rober()
    C.progress("reference: Radau on the sensitivity system")
    ref_loss, ref, ref_steps = sensitivity_reference(problem)
    ref_notes = [f"- reference gradient: scipy Radau (rtol 1e-12, atol 1e-15, exact Jacobian, {ref_steps} steps) on the "
                 f"forward sensitivity system for the scaled sensitivities k_j dy/dk_j: "
                 f"dL/dk = ({', '.join(f'{g:.12e}' for g in ref)}), loss {ref_loss:.15f}"]
    if not args.no_fd:
        C.progress("reference cross-check: central finite differences")
        fd = fd_reference(problem)
        ref_notes.append(f"- cross-check: central differences (relative step 1e-4, Radau rtol 1e-10, atol 1e-13) differ from it by "
                         f"{C.max_rel_err(fd, ref):.1e} (max rel over k1..k3)")

    kc4_ok, kc4_msg = diffrax_kencarp4_works()
    C.progress(f"diffrax KenCarp4 sanity check: {'ok' if kc4_ok else 'FAILED'}")
    rows = []
    for alg in pss.sensitivity.names():
        C.progress(f"pss {alg}")
        rows.append(pss_row(problem, alg))
    for alg in ("ForwardDiffSensitivity", "ForwardSensitivity"):
        rows.append(pss_row(problem, alg, tol=(1e-6, 1e-8), label=f"pss {SOLVER} + {alg} (rtol 1e-6, atol 1e-8)"))
    C.progress("CasADi")
    rows += casadi_rows(problem)
    rows += casadi_rows(problem, suffix=", quad_err_con", modes=("adjoint",), quad_err_con=True)
    rows += casadi_rows(problem, tol=(1e-10, 1e-12), suffix=" (rtol 1e-10, atol 1e-12)")
    for name in ["Kvaerno5", "KenCarp4" if kc4_ok else "Kvaerno4"]:
        C.progress(f"diffrax {name}")
        rows.append(diffrax_row(name, problem))

    tight = pss.gradient(problem, SOLVER, "ForwardDiffSensitivity", rtol=1e-12, atol=1e-16)  # compiled above
    ref_notes.append(f"- cross-check: pss {SOLVER} + ForwardDiffSensitivity at rtol 1e-12, atol 1e-16 differs by "
                     f"{C.max_rel_err([tight.grad[k] for k in NAMES], ref):.1e}")
    C.progress("timing")
    times = C.time_interleaved({r.method: r.call for r in rows if r.timed}, rounds=args.rounds, budget_s=args.budget)
    table, res = [], {}
    for r in rows:
        r.times = times.get(r.method, [float("nan")])
        med = C.median(r.times)
        compile_s = r.setup_s + max(r.first_s - med, 0.0)
        compile_cpu = r.setup_s + max(r.first_cpu - min(r.times), 0.0)
        err = C.max_rel_err(r.grad, ref, floor=0.0)
        res[r.method] = dict(ms=1e3 * med, min_ms=1e3 * min(r.times), compile=compile_s, err=err, status=r.status)
        table.append([r.method, C.fmt(1e3 * med, ".3g"), C.fmt(1e3 * min(r.times), ".3g"), f"{C.fmt(compile_s, '.1f')} ({C.fmt(compile_cpu, '.1f')})",
                      r.steps, ", ".join(C.fmt(g, ".6e") for g in r.grad), C.fmt(err, ".1e"), r.status])

    C.banner("Results")
    print(C.markdown_table(["method", "run ms (median)", "min ms", "compile s wall (CPU)", "steps acc/rej",
                            "dL/d(k1, k2, k3)", "max rel grad err", "status"], table))
    print()
    print("\n".join(ref_notes))
    print("- gradient error: max_j |g_j - ref_j| / |ref_j| over k1, k2, k3")
    if not kc4_ok:
        print(f"- diffrax KenCarp4 not run: it needs MultiTerm(explicit, implicit) and the fully implicit "
              f"MultiTerm(0, f) fails a y' = -y sanity check here ({kc4_msg}); Kvaerno4 instead")

    mem = None
    if not args.no_memory:
        mem = memory_section()
        vdp, ms, mrows, totals = mem
        C.banner(f"Memory: Van der Pol mu=1e3 on [0, {vdp.tspan[1]:g}], {SOLVER}, rtol={RTOL:g}, max_steps={ms}")
        print(C.markdown_table(["compiled function", "arguments KiB", "outputs KiB", "temp KiB",
                                "total KiB", "steps acc/rej", "status", "compile s", "one run ms"], mrows))
        print("\n- XLA's compiled memory analysis (`jax.jit(f).lower(...).compile().memory_analysis()`): per-step "
              "records of max_steps entries (`max_saved_steps=max_steps`) sized at compile time; total = arguments + "
              "outputs + temp - aliased. It is the device-buffer footprint of one call, not the Python process RSS. "
              "pss.solve program (`pystiffsens.programs.solve`), compiled by `pss.jit`; gradients: "
              "`pss.jit(pss.make_gradient_fn(..., max_saved_steps=max_steps))`.")

    C.banner("Targets")
    verdict = lambda ok: "**met**" if ok else "**not met**"
    cas = {k: v for k, v in res.items() if k.startswith("CasADi") and "rtol" not in k and v["status"] == "Success"}
    ours = {k: v for k, v in res.items() if k.startswith("pss") and "rtol" not in k and v["status"] == "Success"
            and np.isfinite(v["err"])}
    if cas and ours:
        oks, lines = [], []
        for cv_name, cv in sorted(cas.items(), key=lambda kv: kv[1]["ms"]):
            eligible = {k: v for k, v in ours.items() if v["err"] <= cv["err"]}
            if not eligible:
                lines.append(f"  - vs {cv_name}: no pystiffsens algorithm reaches its error {cv['err']:.1e}")
                oks.append(False)
                continue
            best_name = min(eligible, key=lambda k: eligible[k]["ms"])
            b = eligible[best_name]
            ratio = b["ms"] / cv["ms"]
            oks.append(ratio <= 1.0)
            lines.append(f"  - vs {cv_name} ({cv['ms']:.3g} ms, err {cv['err']:.1e}): fastest pystiffsens algorithm with "
                  f"error <= that is {best_name}, {b['ms']:.3g} ms (err {b['err']:.1e}) = {ratio:.2f}x "
                  f"(ratio of minimum times {b['min_ms'] / cv['min_ms']:.2f}x)")
        print(f"- best pystiffsens algorithm at most 1.0x CVODES's time at equal or smaller gradient error "
              f"(against every CVODES mode at rtol 1e-8): {verdict(all(oks))}")
        print("\n".join(lines))
        for k, v in res.items():
            if k.startswith("pss") and "rtol 1e-6" in k:
                fastest_cv = min(cas.values(), key=lambda v: v["ms"])
                print(f"  - looser pystiffsens tolerance: {k}: {v['ms']:.3g} ms, err {v['err']:.1e} "
                      f"({v['ms'] / fastest_cv['ms']:.2f}x the fastest CVODES mode)")
        dfx_rows = {k: v for k, v in res.items() if k.startswith("diffrax") and v["status"] == "Success"}
        if dfx_rows:
            fastest = min(dfx_rows, key=lambda k: dfx_rows[k]["ms"])
            accurate = {k: v for k, v in ours.items() if v["err"] <= dfx_rows[fastest]["err"]} or ours
            best_name = min(accurate, key=lambda k: accurate[k]["ms"])
            b = accurate[best_name]
            r = dfx_rows[fastest]["ms"] / b["ms"]
            print(f"- at least 5x faster than diffrax: fastest diffrax ({fastest}) {dfx_rows[fastest]['ms']:.3g} ms / "
                  f"fastest pystiffsens with error <= diffrax's ({best_name}) {b['ms']:.3g} ms = {r:.1f}x -> {verdict(r >= 5.0)}")
    if mem is not None:
        totals = mem[3]
        rda = totals["gradient, ReverseDiffAdjoint"]
        for base in ("forward solve, as pss.solve (per-step state recording)", "forward solve, bare loop (no recording)"):
            r = rda / totals[base]
            print(f"- ReverseDiffAdjoint peak memory at most 5x the forward solve's ({base}): {r:.2f}x -> {verdict(r <= 5.0)}")
    print(f"- load average at end: {C.load():.1f}; total run time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
