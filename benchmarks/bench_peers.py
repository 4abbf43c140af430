"""Peer benchmark: pystiffsens's compiled core against CVODES (CasADi) and diffsol (pydiffsol)
at matched error, on ROBER, HIRES and POLLU: forward solves and parameter gradients over a
sweep of tolerances, with work-precision plots.

Run: ``python benchmarks/bench_peers.py`` (needs ``pip install -e .[bench]`` plus
``pip install pydiffsol matplotlib``). Prints Markdown (machine, versions, the table per
problem, the ratios at matched error) on stdout and progress on stderr; writes
``benchmarks/results/peers.csv`` (rows of problems not in this run are kept, so a problem can be
rerun alone) and one work-precision plot per problem, ``benchmarks/results/peers_<problem>.png``.
About 6 minutes on 2 cores (ROBER 1.5, HIRES 2, POLLU 2.5); timings need the cores to themselves
(the load average is reported per problem).
Options: ``--problems ROBER HIRES POLLU``, ``--solvers Rodas5P FBDF KenCarp4`` (any adaptive
solvers of ``pss.solvers``), ``--rtols 1e-4 ... 1e-10``, ``--rounds N``,
``--budget S`` (seconds of timing rounds per problem), ``--no-gradients``, ``--one-core`` (pin
the process to one CPU), ``--out DIR``.

What is timed (after a first call, median of interleaved rounds in a random order per round)
-------------------------------------------------------------------------------------------
* pystiffsens: the jitted integration loop (``pss.jit`` of ``integrate``, no per-step
  recording: the states at the final time only) and the jitted gradient function that
  ``pss.make_gradient_fn`` returns, with ForwardDiffSensitivity and ReverseDiffAdjoint. Both
  take the tolerances as arguments of the compiled program, so each solver (and algorithm)
  compiles once for the whole sweep; its compile time is in the first (loosest) row.
* CVODES through CasADi (BDF, Newton, dense LU, exact Jacobian by CasADi's AD):
  ``F(x0=..., p=...)`` of ``casadi.integrator('F', 'cvodes', ...)`` (bench_solvers.py), and the
  loss gradient by forward sensitivities ``jtimes(L, p, I, False)`` and by CVODES's adjoint
  ``jtimes(L, p, 1, True)`` (bench_gradients.py); "compile" = building the functions plus the
  first call minus the median call.
* diffsol through pydiffsol (the model in DiffSL, compiled by its LLVM JIT; dense nalgebra
  matrices, LU): ``Ode.solve_dense(p, [T])`` with the methods ``bdf``, ``esdirk34`` and
  ``tr_bdf2``; gradients by ``Ode.solve_fwd_sens`` (forward sensitivities) and
  ``Ode.solve_adjoint_fwd`` + ``Ode.solve_adjoint_bkwd`` (its discrete adjoint); "compile" =
  building the ``Ode`` (the JIT of the DiffSL code) plus the first call minus the median.
Every method gets the same rtol and atol = ``--atol-factor`` x rtol (1e-2, as bench_solvers.py
uses rtol 1e-8, atol 1e-10) and max_steps=100_000; other options are each library's defaults.

Errors are against scipy Radau references (rtol 1e-12, atol 1e-15; bench_solvers.py's for the
state, bench_gradients.py's forward-sensitivity system for the gradient). "At matched error"
interpolates a method's median time, in log-log space along its work-precision curve, at the
error CVODES reaches at ``--match-rtol`` (1e-8).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import math
import os
import sys
import time
import warnings

import numpy as np

# Compile times are fresh compilations: with pystiffsens's persistent caches on, a rerun loads them.
os.environ.setdefault("PYSTIFFSENS_NO_COMPILATION_CACHE", "1")
# --one-core: pin the process (and the threads it starts later: XLA's, CasADi's) to one CPU, before JAX starts.
if "--one-core" in sys.argv and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_solvers  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from bench_gradients import Row as GradRow  # noqa: E402
from bench_gradients import sensitivity_reference  # noqa: E402
from bench_solvers import Row as SolveRow  # noqa: E402
from bench_solvers import casadi_integrator, casadi_row, param_vector  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import pystiffsens as pss  # noqa: E402  (enables float64)

MAX_STEPS = 100_000
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PSS_SOLVERS = ["Rodas5P", "FBDF", "KenCarp4"]
PSS_SENSITIVITIES = ["ForwardDiffSensitivity", "ReverseDiffAdjoint"]
DIFFSOL_METHODS = ["bdf", "esdirk34", "tr_bdf2"]
GRAD_FLOOR = 1e-6  # gradient entries whose scaled size |theta_j g_j| is below this x the largest are left out


# ============================================================================ pystiffsens adapters
# The two adapters below (with their cached programs) are the only lines of this script that call
# pystiffsens's solvers and gradients. Each returns a zero-argument callable that runs one call of the
# compiled program pss.solve / pss.gradient runs (pystiffsens.programs, compiled with pss.jit, the
# tolerances as arguments as there), blocks, and returns the program's output untouched (no JAX
# operation outside the compiled program is timed); ``pss_result`` turns it into (final state or
# flat gradient, steps "accepted/rejected", status word) outside the timed call.
@functools.cache
def _pss_program(problem, solver, sensitivity=None, saved_steps=0):
    from pystiffsens import programs
    from pystiffsens.backends.native import inputs

    so, inp = pss.solvers.get(solver), inputs(problem)
    if sensitivity is None:  # the bare loop: nothing recorded per step (pss.solve(..., save_steps=False))
        return pss.jit(programs.solve(programs.Spec(problem.rhs, inp.structure, so), 0)), inp
    spec = programs.Spec(problem.rhs, inp.structure, so, pss.sensitivity.get(sensitivity), problem.loss_fn)
    return pss.jit(programs.gradient(spec, (saved_steps,))), inp


def _pss_args(problem, solver, inp, rtol, atol):
    options = pss.Options(rtol=rtol, atol=atol, max_steps=MAX_STEPS).for_method(pss.solvers.get(solver))
    return inp.args(options)


def pss_compiled_solve(problem, solver, rtol, atol):
    """One compiled pystiffsens solve to the final time (the bare loop: nothing recorded per step)."""
    run, inp = _pss_program(problem, solver)
    args = _pss_args(problem, solver, inp, rtol, atol)
    return lambda: jax.block_until_ready(run(*args))


def pss_compiled_gradient(problem, solver, sensitivity, rtol, atol, max_saved_steps=None, tolerances_in_program=True):
    """One compiled call of pystiffsens's gradient program at ``problem.params``.

    ``max_saved_steps``: length of the per-step records of the algorithms that record the solve
    (ReverseDiffAdjoint); None = max_steps. ``tolerances_in_program=False`` compiles
    ``pss.jit(pss.make_gradient_fn(..., rtol=rtol, atol=atol))`` literally (one program per
    tolerance), for the cross-check that both give the same gradient.
    """
    if tolerances_in_program:
        run, inp = _pss_program(problem, solver, sensitivity, max_saved_steps or MAX_STEPS)
        args = _pss_args(problem, solver, inp, rtol, atol)
        return lambda: jax.block_until_ready(run(*args))
    fn = pss.jit(pss.make_gradient_fn(problem, solver, sensitivity, rtol=rtol, atol=atol, max_steps=MAX_STEPS,
                                      max_saved_steps=max_saved_steps))
    return lambda: jax.block_until_ready(fn(problem.params))


def pss_result(out):
    """(final state or flat gradient as NumPy, steps "accepted/rejected", status word) of an adapter's output."""
    if isinstance(out, dict):  # a gradient
        value = ravel_pytree(out["grad"])[0]
        stats, status, full = {k: int(v) for k, v in out["stats"].items()}, int(out["status"]), bool(out["buffer_full"])
    else:  # a solve program's (ys, info, step_t, step_y)
        ys, info = out[0], C.solve_info(out[1])
        value, stats, status, full = ys[-1], info, info["status"], bool(info["buffer_full"])
    word = pss.ReturnCode(status).name + (" (step buffer full)" if full else "")
    return np.asarray(value), f"{stats['n_steps']}/{stats['n_rejected']}", word
# ============================================================================ end of the adapters


# ----------------------------------------------------------------------------- problems and models
@dataclasses.dataclass(frozen=True)
class Model:
    """A right-hand side as text, from which the DiffSL code (and POLLU's CasADi expression) is made.

    ``params``: names in the order of the problem's flattened parameters (``ravel_pytree``);
    ``rates``: intermediate quantities ``(name, expression)``; ``rhs``: one expression per state.
    """

    params: tuple
    states: tuple
    rates: tuple
    rhs: tuple


ROBER_MODEL = Model(
    params=("k1", "k2", "k3"), states=("y1", "y2", "y3"), rates=(),
    rhs=("-k1 * y1 + k3 * y2 * y3", "k1 * y1 - k2 * y2 * y2 - k3 * y2 * y3", "k2 * y2 * y2"),
)
HIRES_MODEL = Model(
    params=tuple(f"k{i}" for i in range(1, 13)), states=tuple(f"y{i}" for i in range(1, 9)),
    rates=(("r1", "k10 * y6 * y8"),),
    rhs=(
        "-k1 * y1 + k2 * y2 + k3 * y3 + k4", "k1 * y1 - k5 * y2", "-k6 * y3 + k2 * y4 + k7 * y5",
        "k3 * y2 + k1 * y3 - k8 * y4", "-k9 * y5 + k2 * y6 + k2 * y7",
        "-r1 + k11 * y4 + k1 * y5 - k2 * y6 + k11 * y7", "r1 - k12 * y7", "-r1 + k12 * y7",
    ),
)
# POLLU as in pystiffsens/problems/chemistry.py (1-based, as the IVP test set writes it)
POLLU_MODEL = Model(
    params=tuple(f"k{i}" for i in range(1, 26)), states=tuple(f"y{i}" for i in range(1, 21)),
    rates=tuple((f"r{i + 1}", e) for i, e in enumerate([
        "k1 * y1", "k2 * y2 * y4", "k3 * y5 * y2", "k4 * y7", "k5 * y7", "k6 * y7 * y6", "k7 * y9",
        "k8 * y9 * y6", "k9 * y11 * y2", "k10 * y11 * y1", "k11 * y13", "k12 * y10 * y2", "k13 * y14",
        "k14 * y1 * y6", "k15 * y3", "k16 * y4", "k17 * y4", "k18 * y16", "k19 * y16", "k20 * y17 * y6",
        "k21 * y19", "k22 * y19", "k23 * y1 * y4", "k24 * y19 * y1", "k25 * y20",
    ])),
    rhs=(
        "-r1 - r10 - r14 - r23 - r24 + r2 + r3 + r9 + r11 + r12 + r22 + r25", "-r2 - r3 - r9 - r12 + r1 + r21",
        "-r15 + r1 + r17 + r19 + r22", "-r2 - r16 - r17 - r23 + r15", "-r3 + 2 * r4 + r6 + r7 + r13 + r20",
        "-r6 - r8 - r14 - r20 + r3 + 2 * r18", "-r4 - r5 - r6 + r13", "r4 + r5 + r6 + r7", "-r7 - r8",
        "-r12 + r7 + r9", "-r9 - r10 + r8 + r11", "r9", "-r11 + r10", "-r13 + r12", "r14", "-r18 - r19 + r16",
        "-r20", "r20", "-r21 - r22 - r24 + r23 + r25", "-r25 + r24",
    ),
)

#: label -> (problem factory, text model)
PROBLEMS = {
    "ROBER": (lambda: pss.problems.get("robertson", t_end=1e5), ROBER_MODEL),
    "HIRES": (lambda: pss.problems.get("hires"), HIRES_MODEL),
    "POLLU": (lambda: pss.problems.get("pollution"), POLLU_MODEL),
}


def diffsl_code(model, problem):
    """DiffSL source: inputs with the problem's values as defaults, initial state, rates, right-hand side."""
    p0, y0 = param_vector(problem), problem.y0
    lines = ["in_i { " + ", ".join(f"{n} = {float(v)!r}" for n, v in zip(model.params, p0)) + " }",
             "u_i { " + ", ".join(f"{n} = {float(v)!r}" for n, v in zip(model.states, y0)) + " }"]
    if model.rates:
        lines += ["r_i {"] + [f"  {n} = {e}," for n, e in model.rates] + ["}"]
    lines += ["F_i {"] + [f"  {e}," for e in model.rhs] + ["}"]
    return "\n".join(lines) + "\n"


def casadi_text_ode(model, x, p):
    """The text model as a CasADi expression (the expressions are Python arithmetic)."""
    import casadi as ca

    ns = {**{n: p[i] for i, n in enumerate(model.params)}, **{n: x[i] for i, n in enumerate(model.states)}}
    for name, expr in model.rates:
        ns[name] = eval(expr, {"__builtins__": {}}, ns)
    return ca.vertcat(*[eval(e, {"__builtins__": {}}, ns) for e in model.rhs])


_bench_solvers_casadi_ode = bench_solvers.casadi_ode


def casadi_ode(label, x, p):
    """bench_solvers's CasADi models (ROBER, HIRES), plus POLLU from its text model."""
    if label == "POLLU":
        return casadi_text_ode(POLLU_MODEL, x, p)
    return _bench_solvers_casadi_ode(label, x, p)


# bench_solvers.casadi_integrator looks its model up by label in its module; POLLU is added there.
bench_solvers.casadi_ode = casadi_ode


def check_models(label, problem, model, diffsol_ode, rng):
    """Max relative difference of the CasADi and DiffSL right-hand sides from the JAX one at a random state."""
    import casadi as ca

    p0 = param_vector(problem)
    y = rng.uniform(0.1, 1.0, problem.y0.size) * np.maximum(np.abs(problem.y0).max(), 1e-3)
    t = 0.5 * problem.tspan[1]
    f_jax = np.asarray(problem.rhs(t, jnp.asarray(y), problem.params))
    x, p = ca.SX.sym("x", y.size), ca.SX.sym("p", p0.size)
    f_ca = np.asarray(ca.Function("f", [x, p], [casadi_ode(label, x, p)])(y, p0)).ravel()
    scale = np.max(np.abs(f_jax))
    out = {"CasADi": float(np.max(np.abs(f_ca - f_jax)) / scale)}
    if diffsol_ode is not None:
        out["DiffSL"] = float(np.max(np.abs(np.asarray(diffsol_ode.rhs(p0, t, y)) - f_jax)) / scale)
        out["DiffSL y0"] = float(np.max(np.abs(np.asarray(diffsol_ode.y0(p0)) - problem.y0)))
    return out


def linear_loss_weights(problem, rng):
    """w with loss(ts, ys, p) = w . y(T) (the CasADi and pydiffsol gradients need a loss linear in y(T));
    ValueError if the loss is not of that form."""
    ts, n = jnp.asarray(problem.saveat), problem.y0.size
    loss = lambda yT, p: problem.loss_fn(ts, yT[None, :], p)
    w = np.asarray(jax.grad(loss)(jnp.asarray(problem.y0), problem.params))
    y = rng.uniform(0.0, 1.0, n)
    g_y, g_p = jax.grad(loss, argnums=(0, 1))(jnp.asarray(y), problem.params)
    ok = (len(problem.saveat) == 1 and np.allclose(np.asarray(g_y), w, rtol=1e-14, atol=0)
          and abs(float(loss(jnp.asarray(y), problem.params)) - float(w @ y)) <= 1e-12 * max(1.0, abs(float(w @ y)))
          and all(not np.any(np.asarray(v)) for v in jax.tree_util.tree_leaves(g_p)))
    if not ok:
        raise ValueError(f"{problem.label}: the loss is not w . y(T); the peers' gradients here need that form")
    return w


# ----------------------------------------------------------------------------- rows
def _tag(row, label, kind, family, method, tol):
    row.problem, row.kind, row.family, row.base, row.tol = label, kind, family, method, tol
    row.key = f"{label}|{kind}|{method}|{tol[0]:g}"
    return row


def pss_solve_row(label, problem, solver, tol):
    call = pss_compiled_solve(problem, solver, *tol)

    def extract(out):
        y, steps, status = pss_result(out)
        return y, steps, "–", "–", status

    return _tag(SolveRow(f"pss {solver}", call, C.first_call(call), extract), label, "solve", "pss", f"pss {solver}", tol)


def cvodes_solve_row(label, problem, tol):
    row = casadi_row(label, problem, tol=tol, method="CVODES")
    return _tag(row, label, "solve", "CVODES", "CVODES", tol)


def _diffsol_ode(code, method, tol):
    import pydiffsol as ds

    t = time.perf_counter()
    ode = ds.Ode(code, matrix_type=ds.nalgebra_dense, scalar_type=ds.f64, linear_solver=ds.lu,
                 ode_solver=getattr(ds, method))
    ode.rtol, ode.atol = tol
    return ode, time.perf_counter() - t


def _diffsol_failure(e):
    return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:130]}"


def diffsol_solve_row(label, problem, code, method, tol):
    ode, build = _diffsol_ode(code, method, tol)
    p, T = param_vector(problem), float(problem.tspan[1])
    t_eval = np.array([T])

    def call():
        try:
            return ode.solve_dense(p, t_eval)
        except RuntimeError as e:  # diffsol's failures raise
            return e

    try:  # step count: solve() returns the state after every step (not timed)
        steps = str(len(ode.solve(p, T).ts) - 1)
    except RuntimeError:
        steps = "–"

    def extract(sol):
        if isinstance(sol, Exception):
            return np.full(problem.y0.size, np.nan), "–", "–", "–", _diffsol_failure(sol)
        return np.asarray(sol.ys)[:, -1], steps, "–", "–", "Success"

    row = SolveRow(f"pydiffsol {method}", call, C.first_call(call), extract, setup_s=build)
    return _tag(row, label, "solve", "pydiffsol", f"pydiffsol {method}", tol)


def pss_gradient_rows(label, problem, solver, tol, max_saved):
    rows = []
    for sens in PSS_SENSITIVITIES:
        call = pss_compiled_gradient(problem, solver, sens, *tol, max_saved_steps=max_saved)

        def extract(out):
            g, steps, status = pss_result(out)
            return float("nan"), g, steps, status

        name = f"pss {solver} + {sens}"
        rows.append(_tag(GradRow(name, call, extract, tol=tol), label, "gradient", "pss", name, tol))
    return rows


def cvodes_gradient_rows(label, problem, tol, w):
    """Loss w . x(T) and its gradient through CVODES, as bench_gradients.casadi_rows builds them for ROBER."""
    import casadi as ca

    t = time.perf_counter()
    F = casadi_integrator(label, problem, *tol)
    m = param_vector(problem).size
    P = ca.MX.sym("p", m)
    L = ca.dot(ca.DM(w.tolist()), F(x0=ca.DM(problem.y0.tolist()), p=P)["xf"])
    fns = {"fwd sens": ca.Function("grad_fwd", [P], [L, ca.jtimes(L, P, ca.DM.eye(m), False)]),
           "adjoint": ca.Function("grad_adj", [P], [L, ca.jtimes(L, P, ca.DM.ones(1, 1), True)])}
    build = time.perf_counter() - t
    p0 = param_vector(problem).tolist()
    rows = []
    for mode, G in fns.items():
        def call(G=G):
            try:
                return G(p0)
            except RuntimeError as e:  # CVODES failures raise
                return e

        def extract(out):
            if isinstance(out, Exception):
                lines = str(out).splitlines()
                why = next((l.split(": ", 1)[-1] for l in lines if "returned" in l), lines[0])
                return float("nan"), np.full(m, np.nan), "–", f"failed: {why[:90]}"
            return float(out[0]), np.asarray(out[1]).ravel(), "–", "Success"

        name = f"CVODES {mode}"
        rows.append(_tag(GradRow(name, call, extract, setup_s=build / len(fns), tol=tol), label, "gradient",
                         "CVODES", name, tol))
    return rows


def diffsol_gradient_rows(label, problem, code, method, tol, w):
    p, t_eval = param_vector(problem), np.array([float(problem.tspan[1])])
    dgdu = np.asarray(w, float)[:, None]
    rows = []

    def fwd(ode):
        return ode.solve_fwd_sens(p, t_eval)

    def adj(ode):
        try:
            sol, checkpoint = ode.solve_adjoint_fwd(p, t_eval)
        except RuntimeError as e:
            raise RuntimeError(f"in solve_adjoint_fwd: {e}") from None
        try:
            return sol, ode.solve_adjoint_bkwd(sol, checkpoint, dgdu)
        except RuntimeError as e:
            raise RuntimeError(f"in solve_adjoint_bkwd: {e}") from None

    for mode, run in (("fwd sens", fwd), ("adjoint", adj)):
        ode, build = _diffsol_ode(code, method, tol)

        def call(ode=ode, run=run):
            try:
                return run(ode)
            except RuntimeError as e:
                return e

        def extract(out, mode=mode):
            if isinstance(out, Exception):
                return float("nan"), np.full(p.size, np.nan), "–", _diffsol_failure(out)
            if mode == "fwd sens":
                return float(w @ np.asarray(out.ys)[:, -1]), np.array([w @ np.asarray(S)[:, -1] for S in out.sens]), "–", "Success"
            sol, g = out
            return float(w @ np.asarray(sol.ys)[:, -1]), np.asarray(g, float).ravel(), "–", "Success"

        name = f"pydiffsol {method} {mode}"
        rows.append(_tag(GradRow(name, call, extract, setup_s=build, tol=tol), label, "gradient", "pydiffsol",
                         name, tol))
    return rows


# ----------------------------------------------------------------------------- errors and matching
def worst_entry(x, ref, keep):
    """Index of the largest relative error |x_j - ref_j| / |ref_j| among the entries ``keep``, or None."""
    x = np.asarray(x, float)
    if not np.all(np.isfinite(x[keep])):
        return None
    rel = np.where(keep, np.abs(x - ref) / np.where(keep, np.abs(ref), 1.0), -1.0)
    return int(np.argmax(rel))


def gradient_error(g, ref, theta):
    """(max_j |g_j - ref_j| / |ref_j|, entries counted, worst j) over the entries whose scaled size
    |theta_j ref_j| is at least GRAD_FLOOR x the largest (the others barely move the loss)."""
    scaled = np.abs(np.asarray(theta) * ref)
    keep = scaled >= GRAD_FLOOR * scaled.max()
    return C.max_rel_err(np.asarray(g)[keep], ref[keep], floor=0.0), int(keep.sum()), worst_entry(g, ref, keep)


def time_at_error(points, target):
    """(time, qualifier) of a work-precision curve at error ``target``.

    ``points``: (error, time) in tolerance order, loose to tight. Log-log interpolation on the first
    segment that crosses ``target``; qualifier "" then, "<=" when every point is more accurate than
    ``target`` (the loosest point's time bounds it), None when no point reaches it.
    """
    pts = [(e, t) for e, t in points if np.isfinite(e) and e > 0 and np.isfinite(t)]
    if not pts:
        return None, None
    for (e0, t0), (e1, t1) in zip(pts, pts[1:]):
        if min(e0, e1) <= target <= max(e0, e1):
            if e0 == e1:
                return min(t0, t1), ""
            s = (math.log(target) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return math.exp(math.log(t0) + s * (math.log(t1) - math.log(t0))), ""
    if all(e <= target for e, _ in pts):
        return pts[0][1], "<="
    return None, None


# ----------------------------------------------------------------------------- one problem
def run_problem(label, args, notes, failures):
    factory, model = PROBLEMS[label]
    problem = factory()
    rtols = sorted(args.rtols, reverse=True)  # loose to tight: the compile is in the first row
    tols = [(r, r * args.atol_factor) for r in rtols]
    rng = np.random.default_rng(0)
    theta = param_vector(problem)

    C.progress(f"{label}: state reference (Radau)")
    y_ref, ref_check, ref_steps = bench_solvers.reference(problem)
    notes.append(f"- {label}: state reference scipy Radau (rtol 1e-12, atol 1e-15, {ref_steps} steps); pss Rodas5P "
                 f"at rtol 1e-12/atol 1e-16 differs from it by {ref_check:.1e} (max rel)")
    code = diffsl_code(model, problem) if HAVE_PYDIFFSOL else None
    probe = _diffsol_ode(code, "bdf", (1e-6, 1e-8))[0] if code else None
    checks = check_models(label, problem, model, probe, rng)
    notes.append(f"- {label}: model check at a random state, max |f - f_jax| / max |f_jax|: "
                 + ", ".join(f"{k} {v:.1e}" for k, v in checks.items()))
    if max(checks.values()) > 1e-12:
        raise RuntimeError(f"{label}: a peer's model differs from the JAX right-hand side: {checks}")

    rows = []
    for solver in args.solvers:
        for tol in tols:
            C.progress(f"{label}: pss {solver} solve rtol {tol[0]:g}")
            rows.append(pss_solve_row(label, problem, solver, tol))
    for tol in tols:
        C.progress(f"{label}: CVODES solve rtol {tol[0]:g}")
        rows.append(cvodes_solve_row(label, problem, tol))
    if code:
        for method in DIFFSOL_METHODS:
            for tol in tols:
                C.progress(f"{label}: pydiffsol {method} solve rtol {tol[0]:g}")
                rows.append(diffsol_solve_row(label, problem, code, method, tol))

    if not args.no_gradients:
        C.progress(f"{label}: gradient reference (Radau on the sensitivity system)")
        ref_loss, g_ref, g_ref_steps = sensitivity_reference(problem)
        w = linear_loss_weights(problem, rng)
        for solver in args.solvers:
            # ReverseDiffAdjoint records the solve: buffers for 1.25x the most steps the solves took, rounded up to 2^k
            most = max(int(r.steps.split("/")[0]) for r in rows if r.base == f"pss {solver}" and r.steps != "–")
            max_saved = max(256, 1 << math.ceil(math.log2(1.25 * most)))
            notes.append(f"- {label}: pss {solver} + ReverseDiffAdjoint with max_saved_steps={max_saved} "
                         f"(1.25x the {most} steps of its tightest solve, rounded up to a power of 2)")
            for tol in tols:
                C.progress(f"{label}: pss {solver} gradients rtol {tol[0]:g}")
                rows += pss_gradient_rows(label, problem, solver, tol, max_saved)
        for tol in tols:
            C.progress(f"{label}: CVODES gradients rtol {tol[0]:g}")
            rows += cvodes_gradient_rows(label, problem, tol, w)
        if code:
            for method in DIFFSOL_METHODS:
                for tol in tols:
                    C.progress(f"{label}: pydiffsol {method} gradients rtol {tol[0]:g}")
                    rows += diffsol_gradient_rows(label, problem, code, method, tol, w)
        # cross-checks: the reference against a tight pss gradient, and the program with the tolerances as
        # arguments against make_gradient_fn's literal one (tolerances compiled in) at the matching tolerance
        tight = pss_result(pss_compiled_gradient(problem, "Rodas5P", "ForwardDiffSensitivity", 1e-12, 1e-14)())
        notes.append(f"- {label}: gradient reference scipy Radau (rtol 1e-12, atol 1e-15, exact Jacobian, {g_ref_steps} "
                     f"steps) on the forward sensitivity system; loss {ref_loss:.12g}; pss Rodas5P + "
                     f"ForwardDiffSensitivity at rtol 1e-12/atol 1e-14 differs from it by "
                     f"{gradient_error(np.asarray(tight[0]), g_ref, theta)[0]:.1e} ({gradient_error(tight[0], g_ref, theta)[1]} of "
                     f"{theta.size} entries counted in the gradient error)")
        if label == "ROBER":
            mt = (args.match_rtol, args.match_rtol * args.atol_factor)
            lit = pss_compiled_gradient(problem, "Rodas5P", "ForwardDiffSensitivity", *mt, tolerances_in_program=False)
            ours = pss_compiled_gradient(problem, "Rodas5P", "ForwardDiffSensitivity", *mt)
            lit(), ours()
            t = C.time_interleaved({"lit": lit, "ours": ours}, rounds=15, budget_s=3.0)
            diff = C.max_rel_err(pss_result(lit())[0], pss_result(ours())[0], floor=0.0)
            notes.append(f"- {label}: `pss.jit(pss.make_gradient_fn(problem, 'Rodas5P', 'ForwardDiffSensitivity', "
                         f"rtol={mt[0]:g}, atol={mt[1]:g}))` (tolerances compiled in) gives the gradient of the "
                         f"timed program (tolerances as arguments) to {diff:.1e} (max rel) in "
                         f"{1e3 * C.median(t['lit']):.3g} ms against {1e3 * C.median(t['ours']):.3g} ms (median)")

    C.progress(f"{label}: timing {sum(not r.status.startswith('failed') for r in rows)} calls")
    calls = {r.key: r.call for r in rows if not r.status.startswith("failed")}  # raised failures are not timed
    load_before, t = C.load(), time.perf_counter()
    with C.quiet_fds():  # CasADi prints from C++
        times = C.time_interleaved(calls, rounds=args.rounds, budget_s=args.budget, per_call_s=args.per_call,
                                   shuffle_seed=0)
    load_after = C.load()
    notes.append(f"- {label}: timing rounds took {time.perf_counter() - t:.0f} s; 1-minute load average "
                 f"{load_before:.1f} before, {load_after:.1f} after (2 cores: above ~1 means other jobs shared them)")
    for r in rows:
        r.load = max(load_before, load_after)
        r.times = times.get(r.key, [])
        med = C.median(r.times)
        r.med_ms = 1e3 * med
        r.min_ms = 1e3 * min(r.times) if r.times else float("nan")
        r.compile_s = r.setup_s + max(r.first_s - med, 0.0) if r.times else r.setup_s
        r.compile_cpu = r.setup_s + max(r.first_cpu - min(r.times), 0.0) if r.times else r.setup_s
        if r.kind == "solve":
            keep = np.abs(y_ref) > 1e-12
            r.err, r.n_err, j = C.max_rel_err(r.y, y_ref), int(keep.sum()), worst_entry(r.y, y_ref, keep)
            r.worst = model.states[j] if j is not None else ""
        else:
            r.err, r.n_err, j = gradient_error(r.grad, g_ref, theta)
            r.worst = f"d/d{model.params[j]}" if j is not None else ""
        ok = r.status == "Success" and np.isfinite(r.err)
        if not ok:
            failures.append(f"- {label} {r.kind} {r.base} rtol {r.tol[0]:g}: {r.status}"
                            + ("" if r.status != "Success" else " (error not finite)"))
    return problem, rows


# ----------------------------------------------------------------------------- output
HEADERS = ["kind", "method", "rtol", "atol", "error (worst entry)", "run ms (median)", "min ms", "rounds",
           "compile s wall (CPU)", "steps acc/rej", "status"]


def table_rows(rows):
    out = []
    first = {}
    for i, r in enumerate(rows):
        first.setdefault(r.base, i)
    for r in sorted(rows, key=lambda r: (r.kind != "solve", first[r.base], -r.tol[0])):
        err = C.fmt(r.err, ".1e") + (f" ({r.worst})" if r.worst and np.isfinite(r.err) else "")
        out.append([r.kind, r.base, f"{r.tol[0]:.0e}", f"{r.tol[1]:.0e}", err, C.fmt(r.med_ms, ".3g"),
                    C.fmt(r.min_ms, ".3g"), len(r.times), f"{C.fmt(r.compile_s, '.2f')} ({C.fmt(r.compile_cpu, '.2f')})",
                    r.steps, r.status])
    return out


ORDER = ["pss", "CVODES", "pydiffsol"]


def curves(rows, kind):
    """method -> [(rtol, error, median s)] in tolerance order, loose to tight (successful rows)."""
    out = {}
    for r in sorted((r for r in rows if r.kind == kind), key=lambda r: -r.tol[0]):
        if r.status == "Success" and np.isfinite(r.err) and r.times:
            out.setdefault(r.base, []).append((r.tol[0], r.err, r.med_ms / 1e3))
    return out


def matched_section(label, rows, kind, reference, match_rtol):
    """Markdown lines: each method against ``reference`` at match_rtol, at that tolerance and at its error."""
    cur = curves(rows, kind)
    at = {r.base: r for r in rows if r.kind == kind and math.isclose(r.tol[0], match_rtol)}
    ref = at.get(reference)
    if ref is None or reference not in cur or not np.isfinite(ref.err) or ref.status != "Success":
        return [f"- {label} {kind}: no successful {reference} row at rtol {match_rtol:g}; no ratios"]
    lines = [f"**{label}, {kind}**: {reference} at rtol {match_rtol:g} reaches error {ref.err:.2e} in "
             f"{ref.med_ms:.3g} ms (median).", "",
             f"| method | error at rtol {match_rtol:g} | ms at rtol {match_rtol:g} | ratio to {reference} (same tol) | "
             f"ms at {reference}'s error | ratio at matched error |", "|---|---|---|---|---|---|"]
    at_matched = {}
    for base in sorted(cur, key=lambda b: (ORDER.index(next(r.family for r in rows if r.base == b)), b)):
        r = at.get(base)
        same = (f"{r.err:.1e}", f"{r.med_ms:.3g}", f"{r.med_ms / ref.med_ms:.2f}x") if r is not None and r.status == "Success" \
            else ("–", "–", f"– ({r.status.split(':')[0] if r is not None else 'no row'})")
        t, q = time_at_error([(e, s) for _, e, s in cur[base]], ref.err)
        if t is None:
            best = min(e for _, e, _ in cur[base])
            matched = (f"not reached (best error {best:.1e})", "–")
        else:
            matched = (f"{q}{1e3 * t:.3g}", f"{q}{1e3 * t / ref.med_ms:.2f}x")
        lines.append(f"| {base} | {same[0]} | {same[1]} | {same[2]} | {matched[0]} | {matched[1]} |")
        if t is not None and not q:
            at_matched[base] = 1e3 * t
    ours = {b: t for b, t in at_matched.items() if b.startswith("pss ")}
    peers = {b: t for b, t in at_matched.items() if not b.startswith("pss ") and b != reference}
    if ours:
        b_o = min(ours, key=ours.get)
        line = (f"At {reference}'s error: fastest pystiffsens {b_o} {ours[b_o]:.3g} ms "
                f"(pystiffsens / {reference} = {ours[b_o] / ref.med_ms:.2f}x); ")
        if peers:
            b_p = min(peers, key=peers.get)
            line += f"fastest other peer {b_p} {peers[b_p]:.3g} ms (pystiffsens / that peer = {ours[b_o] / peers[b_p]:.2f}x)."
        else:
            line += "no other peer reaches that error within the sweep."
        lines += ["", line]
    return lines


STYLE = {"Rodas5P": "tab:blue", "FBDF": "tab:orange", "KenCarp4": "tab:green", "bdf": "tab:red",
         "esdirk34": "tab:purple", "tr_bdf2": "tab:brown", "Rodas4": "tab:cyan", "Rosenbrock23": "tab:olive",
         "TRBDF2": "tab:pink", "Kvaerno5": "darkgoldenrod", "RadauIIA5": "navy"}


MAX_PLOTTED_ERROR = 10.0  # errors above this are listed in the panel instead of stretching its axis


def plot(label, rows, match_rtol, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    order = {}
    for r in rows:
        order.setdefault(r.base, len(order))
    kinds = [k for k in ("solve", "gradient") if any(r.kind == k for r in rows)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(7.5 * len(kinds), 7.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        off = []
        for base, pts in sorted(curves(rows, kind).items(), key=lambda kv: order[kv[0]]):
            family = next(r.family for r in rows if r.base == base)
            color = "black" if family == "CVODES" else STYLE.get(base.split()[1], "gray")
            ls = {"pss": "-", "CVODES": "-", "pydiffsol": ":"}[family]
            if "adjoint" in base.lower():
                ls = "--" if family != "pydiffsol" else "-."
            marker = {"pss": "o", "CVODES": "s", "pydiffsol": "^"}[family]
            shown = [p for p in pts if p[1] <= MAX_PLOTTED_ERROR]
            if len(shown) < len(pts):
                off.append(f"{base} ({len(pts) - len(shown)} of {len(pts)})")
            ax.plot([p[1] for p in shown], [1e3 * p[2] for p in shown], ls=ls, marker=marker, color=color, ms=4,
                    lw=1.4, label=base, mfc="none" if "adjoint" in base.lower() else color)
            if family == "CVODES" and "adjoint" not in base:
                for rtol, e, t in shown:
                    ax.annotate(f"{rtol:.0e}", (e, 1e3 * t), fontsize=6, color="dimgray", xytext=(3, -8),
                                textcoords="offset points")
        ref_name = "CVODES" if kind == "solve" else "CVODES fwd sens"
        ref = [r for r in rows if r.kind == kind and r.base == ref_name and math.isclose(r.tol[0], match_rtol)]
        if ref and np.isfinite(ref[0].err):
            ax.axvline(ref[0].err, color="gray", lw=0.8, ls=":")
            ax.text(ref[0].err, 0.98, f" {ref_name} error\n at rtol {match_rtol:g}", transform=ax.get_xaxis_transform(),
                    fontsize=7, color="gray", ha="left", va="top")
        if off:
            ax.text(0.01, 0.01, f"error > {MAX_PLOTTED_ERROR:g}, not shown: " + "; ".join(off), fontsize=6.5,
                    transform=ax.transAxes, ha="left", va="bottom", color="dimgray", wrap=True)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel("max relative error at the final time (vs Radau reference)" if kind == "solve"
                      else "max relative error of the loss gradient (vs Radau reference)")
        ax.set_ylabel("median wall time per call (ms)")
        ax.set_title(f"{label}: {'forward solve' if kind == 'solve' else 'loss gradient'}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
    fig.suptitle(f"{label}: work-precision, rtol {max(r.tol[0] for r in rows):g} ... {min(r.tol[0] for r in rows):g}, "
                 f"atol = {rows[0].tol[1] / rows[0].tol[0]:g} x rtol (lower left is better)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CSV_HEADER = ["problem", "kind", "method", "family", "rtol", "atol", "error", "error_entries", "worst_entry",
              "median_ms", "min_ms", "rounds", "compile_s", "compile_cpu_s", "steps", "status", "date", "load_avg"]


def write_csv(path, rows, stamp):
    """Write the rows; rows of other problems already in ``path`` are kept, so a problem can be rerun alone."""
    kept = []
    if os.path.exists(path):
        with open(path, newline="") as f:
            old = list(csv.reader(f))
        if old and old[0] == CSV_HEADER:
            done = {r.problem for r in rows}
            kept = [line for line in old[1:] if line and line[0] not in done]
    new = [[r.problem, r.kind, r.base, r.family, f"{r.tol[0]:g}", f"{r.tol[1]:g}", f"{r.err:.6e}", r.n_err, r.worst,
            f"{r.med_ms:.6g}", f"{r.min_ms:.6g}", len(r.times), f"{r.compile_s:.4g}", f"{r.compile_cpu:.4g}", r.steps,
            r.status, stamp, f"{r.load:.2f}"] for r in rows]
    order = list(PROBLEMS)
    lines = sorted(kept + new, key=lambda line: order.index(line[0]) if line[0] in order else len(order))
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(CSV_HEADER)
        wr.writerows(lines)
    return sorted({line[0] for line in kept})


try:
    import pydiffsol  # noqa: F401

    HAVE_PYDIFFSOL = True
except ImportError:
    HAVE_PYDIFFSOL = False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--rtols", nargs="+", type=float, default=[10.0 ** -k for k in range(4, 11)],
                    help="relative tolerances of the sweep (default 1e-4 ... 1e-10)")
    ap.add_argument("--atol-factor", type=float, default=1e-2, help="atol = factor x rtol")
    ap.add_argument("--match-rtol", type=float, default=1e-8, help="the CVODES tolerance the ratios are taken at")
    ap.add_argument("--rounds", type=int, default=15, help="timing rounds (median reported)")
    ap.add_argument("--budget", type=float, default=25.0, help="seconds of timing rounds per problem")
    ap.add_argument("--per-call", type=float, default=0.5, help="a call stops sampling (after 3 rounds) once its "
                    "times add up to this many seconds")
    ap.add_argument("--solvers", nargs="+", default=PSS_SOLVERS,
                    help=f"pystiffsens's adaptive solvers to compare (default: {' '.join(PSS_SOLVERS)})")
    ap.add_argument("--no-gradients", action="store_true", help="forward solves only")
    ap.add_argument("--one-core", action="store_true", help="run on one CPU (XLA's thread hand-offs then cost less; "
                    "the peers are single-threaded)")
    ap.add_argument("--out", default=RESULTS, help="folder for peers.csv and peers_<problem>.png")
    args = ap.parse_args(argv)
    if not any(math.isclose(r, args.match_rtol) for r in args.rtols):
        ap.error(f"--match-rtol {args.match_rtol:g} must be one of --rtols")
    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)

    print("# pystiffsens against its peers at matched error\n")
    print("\n".join(C.machine_info()))
    extra = [f"pystiffsens imported from {os.path.dirname(pss.__file__)}"]
    if HAVE_PYDIFFSOL:
        import pydiffsol as ds

        extra.append(f"pydiffsol {ds.version()} (diffsol {ds.diffsol_version()}, DiffSL {ds.diffsl_version()}, "
                     f"JIT backend {ds.default_enabled_jit_backend()})")
    else:
        extra.append("pydiffsol not installed: its rows are left out")
    extra.append(f"matplotlib {C._version('matplotlib')}")
    print(f"- {'; '.join(extra)}")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    print(f"- CPUs this process may run on: {cpus or 'all'}{' (--one-core)' if args.one_core else ''}")
    print(f"- pystiffsens's persistent compilation caches: "
          f"{'off (fresh compilations)' if os.environ.get('PYSTIFFSENS_NO_COMPILATION_CACHE') == '1' else 'on'}")
    print(f"- tolerances rtol {', '.join(f'{r:g}' for r in sorted(args.rtols, reverse=True))}, atol = "
          f"{args.atol_factor:g} x rtol; max_steps={MAX_STEPS}; median of up to {args.rounds} interleaved rounds "
          f"(random order each round, at most {args.budget:g} s per problem)")

    all_rows, notes, failures, made = [], [], [], []
    for label in args.problems:
        problem, rows = run_problem(label, args, notes, failures)
        all_rows += rows
        C.banner(f"{label}: {problem.description}, t in [{problem.tspan[0]:g}, {problem.tspan[1]:g}]")
        print(C.markdown_table(HEADERS, table_rows(rows)))
        print()
        print("\n".join(matched_section(label, rows, "solve", "CVODES", args.match_rtol)))
        if not args.no_gradients:
            print()
            print("\n".join(matched_section(label, rows, "gradient", "CVODES fwd sens", args.match_rtol)))
        try:
            path = os.path.join(args.out, f"peers_{label.lower()}.png")
            plot(label, rows, args.match_rtol, path)
            made.append(path)
        except ImportError as e:
            notes.append(f"- no plot for {label}: {e}")
        sys.stdout.flush()

    path = os.path.join(args.out, "peers.csv")
    kept = write_csv(path, all_rows, time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
    made.insert(0, path + (f" (rows of {', '.join(kept)} kept from an earlier run)" if kept else ""))

    C.banner("Notes")
    print("\n".join(notes))
    print(f"- solve error: max relative error at the final time over the components with |y_ref| > 1e-12; gradient "
          f"error: max_j |g_j - ref_j| / |ref_j| over the parameters whose scaled gradient |theta_j ref_j| is at "
          f"least {GRAD_FLOOR:g} x the largest (the count is in each problem's reference note); in brackets the "
          f"component or parameter with the largest error")
    print("- pss rows: one compiled program per solver (and per gradient algorithm) serves the whole sweep (the "
          "tolerances are arguments), so its compile time appears in the loosest row; pydiffsol and CVODES build "
          "one object per row. Steps: pss accepted/rejected; CVODES accepted/error-test failures; pydiffsol the "
          "steps its solve() returns; gradients of CVODES and pydiffsol do not report steps")
    print("- ratios at matched error: each method's median time at the error the reference reaches at the match "
          "tolerance, interpolated in log-log space on the first segment of its curve (loose to tight) that "
          "crosses it; '<=' when the method is more accurate than that at every tolerance (its loosest time bounds "
          "it); 'not reached' when no tolerance of the sweep reaches it")
    C.banner("Failures")
    print("\n".join(failures) if failures else "- none")
    shown = lambda p: os.path.relpath(p, C.ROOT) if os.path.abspath(p).startswith(C.ROOT + os.sep) else p
    print(f"\n- written: {', '.join(shown(p) for p in made)}")
    print(f"- load average at end: {C.load():.1f}; total run time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
