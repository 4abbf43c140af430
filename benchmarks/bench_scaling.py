"""Scaling benchmark (issue 10 item 5): cost of every sensitivity algorithm against batch
size, parameter count and state dimension, with fitted growth exponents, beside CasADi/CVODES
(forward sensitivities and adjoint) and diffrax on the same work in the same run.

Run: ``python benchmarks/bench_scaling.py`` (needs ``pip install -e .[bench]``); prints
Markdown on stdout, progress on stderr, and writes every measurement (one row per method
and size, skipped cases included with their reason) to ``benchmarks/results/scaling.csv``.
``--quick`` is a smoke run (B = 1 and 32, P ~ 10, n = 3; diffrax on the batch only; short caps) that writes
``scaling_quick.csv``. ``--from-csv FILE`` reprints the Markdown of an earlier run without
running anything; sizes, caps and methods can be chosen (``--help``).

Families (one clean size knob each; Rodas5P for every pystiffsens row)
------------------------------------------------------------------------
* **batch** B = 1..256: ROBER on [0, 1e5], loss sum(y(T)) + 1e4*y2(T), gradient w.r.t. (k1,
  k2, k3), rtol 1e-8 / atol 1e-10, k2 on ``logspace(5, 9, B)`` (B = 1: k2 = 1e7). pystiffsens:
  one run of the vmapped sweep batch (``pss.backends.get("jax").gradient_batch(...)``);
  CVODES: a Python loop of B gradient calls; diffrax: ``jax.jit(jax.vmap(value_and_grad))``.
  B = 32 is the issue's grid: the throughput target compares it with the CVODES loop.
* **params** P ~ 10..10^4: the stiff neural ODE y' = -lam diag(0, 1, 0.01) y + MLP(y),
  y(0) = (1, 1, 1), lam = 1e4, t in [0, 1], MLP 3-h-h-3 with tanh, P = h^2 + 8h + 4
  (weights, biases and lam); loss sum(y(1)); rtol 1e-6 / atol 1e-8.
* **states** n = 3..1000: the dense stiff system y' = -(a S + b I) y + c M tanh(y) + d,
  S = Q diag(logspace(0, 4, n)) Q^T (Q random orthogonal), M random N(0, 1/n), dense
  Jacobian; P = 4 (a, b, c, d); y(0) = 1, t in [0, 1], loss sum(y(1)); rtol 1e-6 / atol 1e-8.

What is timed
-------------
The compiled run only, the minimum (and median) of up to ``--repeats`` calls; compilation is
reported separately, with pystiffsens's persistent caches off
(``PYSTIFFSENS_NO_COMPILATION_CACHE=1`` unless set otherwise), so it is a fresh compilation
each time. pystiffsens single calls: ``pss.jit(pss.make_gradient_fn(...))``, lowered and
compiled ahead (compile = ``lower(...).compile()``, tracing included), then the compiled
executable with ``block_until_ready``; its step records are the default of
``make_gradient_fn`` (``max_saved_steps=None``: a ``lax.cond`` ladder of record lengths).
Batches: ``BatchResult.run_time_s`` of the batch's ``run()``, and the wall time of
``gradient_batch(...)`` (tracing and compiling its first program) as compile time.
CasADi: ``casadi.integrator('F', 'cvodes', ...)`` with an MX function returning the loss
and its gradient: forward = ``jtimes(L, p, I_P, False)`` (P forward sensitivity
directions), adjoint = ``jtimes(L, p, 1, True)`` (CVODES adjoint with checkpoints); compile = building the functions plus first call minus the
fastest call. diffrax: Kvaerno5 + RecursiveCheckpointAdjoint, ``jax.jit(value_and_grad)``.

Bounded cost: before each size a method's run and compile time are predicted from its two
previous sizes (time ~ size^k with k >= 1 for the run); a case predicted over ``--cap`` (run)
or ``--compile-cap`` seconds is skipped, as is any JAX case whose compiled memory (XLA memory
analysis; for batches of B >= 8, B times the footprint of one lane with ``max_steps``-long
records) exceeds ``--mem-cap-gib``. Skips are rows of the CSV with the reason. Exponents: least-squares slope of log(min time) on log(size)
over the successful sizes (all of them, and the largest three).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Compile times are fresh compilations: with the persistent caches on, sizes run before were
# cache hits (0.6-0.8 s against 6-10 s) and the compile-time prediction extrapolated that jump.
os.environ.setdefault("PYSTIFFSENS_NO_COMPILATION_CACHE", "1")
import _common as C  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import pystiffsens as pss  # noqa: E402  (enables float64)
from pystiffsens import _compilation_cache  # noqa: E402

SOLVER = "Rodas5P"
MAX_STEPS = 100_000
DIFFRAX = "diffrax Kvaerno5 + RecursiveCheckpointAdjoint"
CVODES_MODES = ("forward sensitivities", "adjoint")
KNOBS = {"batch": "B", "params": "P", "states": "n"}
DEFAULT_SIZES = {
    "batch": [1, 2, 4, 8, 16, 32, 64, 128, 256],
    "params": [10, 30, 100, 300, 1000, 3000, 10000],
    "states": [3, 10, 30, 100, 300, 1000],
}
QUICK_SIZES = {"batch": [1, 32], "params": [10], "states": [3]}
THROUGHPUT_B = 32
MAX_REPEATS = 15  # cheap cases repeat until --sample-s seconds or this many runs
CSV_FIELDS = ["family", "knob", "size", "detail", "method", "library", "run_s_min", "run_s_median", "repeats",
              "compile_s", "memory_bytes", "status", "steps", "grad_diff", "grad_reference", "skipped"]


# ----------------------------------------------------------------------------- problems
@dataclasses.dataclass
class Case:
    """One problem at one size of its family's knob."""

    family: str
    size: int
    detail: str
    problem: pss.Problem
    rtol: float
    atol: float
    casadi_ode: Callable  # (x, p) -> CasADi expression; p in ravel_pytree(params) order
    casadi_loss: Callable  # xf -> CasADi scalar
    casadi_sym: str = "SX"
    grid: np.ndarray | None = None  # stiffness values of a batch


def rober_grid(b: int) -> np.ndarray:
    """k2 values of a batch of ``b``: the issue's grid ``logspace(5, 9, b)``; 1e7 for b = 1."""
    return np.array([1e7]) if b == 1 else np.logspace(5, 9, b)


def batch_case(b: int) -> Case:
    def ode(x, p):
        import casadi as ca

        r1, r2, r3 = p[0] * x[0], p[1] * x[1] ** 2, p[2] * x[1] * x[2]
        return ca.vertcat(-r1 + r3, r1 - r2 - r3, r2)

    problem = pss.problems.get("robertson", t_end=1e5)
    return Case("batch", b, f"k2 = logspace(5, 9, {b})" if b > 1 else "k2 = 1e7", problem, 1e-8, 1e-10,
                ode, lambda xf: _casadi_sum(xf) + 1e4 * xf[1], grid=rober_grid(b))


NODE_RATES = np.array([0.0, 1.0, 0.01])


def mlp_width(p_target: int) -> int:
    """Hidden width h of the 3-h-h-3 MLP whose parameter count h^2 + 8h + 4 is nearest ``p_target``."""
    return max(1, round((-8 + math.sqrt(64 + 4 * max(p_target - 4, 0))) / 2))


def _mlp_shapes(h):
    return [(h, 3), (h,), (h, h), (h,), (3, h), (3,)]


def params_case(p_target: int, lam: float = 1e4, seed: int = 0) -> Case:
    h = mlp_width(p_target)
    shapes = _mlp_shapes(h)
    rng = np.random.default_rng(seed)
    theta = np.concatenate([
        (rng.standard_normal(s) / math.sqrt(s[1])).ravel() if len(s) == 2 else 0.1 * rng.standard_normal(s)
        for s in shapes
    ])

    def unpack(th, reshape):
        out, o = [], 0
        for s in shapes:
            size = int(np.prod(s))
            out.append(reshape(th[o:o + size], s))
            o += size
        return out

    rates = jnp.asarray(NODE_RATES)

    def rhs(t, y, p):
        W1, b1, W2, b2, W3, b3 = unpack(p["theta"], lambda v, s: v.reshape(s))
        z = jnp.tanh(W2 @ jnp.tanh(W1 @ y + b1) + b2)
        return -p["lam"] * rates * y + W3 @ z + b3

    def ode(x, p):
        import casadi as ca

        # row-major (r, c) from a flat vector = column-major (c, r) transposed
        W1, b1, W2, b2, W3, b3 = unpack(p[1:], lambda v, s: ca.reshape(v, s[1], s[0]).T if len(s) == 2 else v)
        z = ca.tanh(ca.mtimes(W2, ca.tanh(ca.mtimes(W1, x) + b1)) + b2)
        return -p[0] * ca.DM(NODE_RATES) * x + ca.mtimes(W3, z) + b3

    problem = pss.Problem(rhs, y0=[1.0, 1.0, 1.0], tspan=(0.0, 1.0), params={"lam": lam, "theta": theta},
                          name=f"stiff_node_h{h}")
    P = theta.size + 1
    return Case("params", P, f"MLP 3-{h}-{h}-3", problem, 1e-6, 1e-8, ode, _casadi_sum)


def states_case(n: int, seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    S = (Q * np.logspace(0, 4, n)) @ Q.T
    M = rng.standard_normal((n, n)) / math.sqrt(n)
    Sj, Mj = jnp.asarray(S), jnp.asarray(M)

    def rhs(t, y, p):
        a, b, c, d = p["theta"]
        return -(a * (Sj @ y) + b * y) + c * (Mj @ jnp.tanh(y)) + d

    def ode(x, p):
        import casadi as ca

        return -(p[0] * ca.mtimes(ca.DM(S), x) + p[1] * x) + p[2] * ca.mtimes(ca.DM(M), ca.tanh(x)) + p[3]

    problem = pss.Problem(rhs, y0=np.ones(n), tspan=(0.0, 1.0), params={"theta": np.array([1.0, 0.1, 1.0, 0.5])},
                          name=f"dense_stiff_n{n}")
    return Case("states", n, "dense, stiffness ratio 1e4, P = 4", problem, 1e-6, 1e-8, ode, _casadi_sum,
                casadi_sym="MX")


def _casadi_sum(xf):
    import casadi as ca

    return ca.sum1(xf)


BUILDERS = {"batch": batch_case, "params": params_case, "states": states_case}


# ----------------------------------------------------------------------------- methods
class Skip(Exception):
    """A case not run, with the reason."""


@dataclasses.dataclass
class Prepared:
    """A compiled case: ``run()`` returns (output, seconds); ``extract(output)`` -> (grads, status, steps)."""

    run: Callable
    extract: Callable
    compile_s: float
    memory_bytes: float = float("nan")
    casadi_build_s: float | None = None  # CasADi: compile = build + first call - fastest call


def _memory(compiled) -> float:
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    return float(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _check_memory(nbytes, cap, what="compiled memory"):
    if np.isfinite(nbytes) and nbytes > cap:
        raise Skip(f"{what} {nbytes / 2**30:.2f} GiB > cap {cap / 2**30:.1f} GiB (XLA memory analysis)")


def _pss_steps(stats):
    steps = f"{np.mean(stats['n_steps']):.0f}/{np.mean(stats['n_rejected']):.0f}"
    if "backward_n_steps" in stats:
        steps += f" + back {np.mean(stats['backward_n_steps']):.0f}/{np.mean(stats['backward_n_rejected']):.0f}"
    return steps


def _status(codes) -> str:
    names = [pss.ReturnCode(int(c)).name for c in np.atleast_1d(codes)]
    bad = [n for n in names if n != "Success"]
    if not bad:
        return "Success"
    if len(names) == 1:
        return bad[0]
    return f"{len(bad)}/{len(names)} lanes {max(set(bad), key=bad.count)}"


def prepare_pss(case: Case, algorithm: str, mem_cap: float) -> Prepared:
    p = case.problem
    f = pss.make_gradient_fn(p, SOLVER, algorithm, rtol=case.rtol, atol=case.atol, max_steps=MAX_STEPS)
    t = time.perf_counter()
    compiled = pss.jit(f).lower(p.params).compile()
    compile_s = time.perf_counter() - t
    mem = _memory(compiled)
    _check_memory(mem, mem_cap)

    def run():
        t = time.perf_counter()
        out = jax.block_until_ready(compiled(p.params))
        return out, time.perf_counter() - t

    def extract(out):
        out = jax.device_get(out)
        return ravel_pytree(out["grad"])[0][None, :], _status(out["status"]), _pss_steps(out["stats"])

    return Prepared(run, extract, compile_s, mem)


_BATCH_LANE_MEMORY: dict = {}
PREFLIGHT_B = 8  # smaller batches are run without the memory preflight (one lane's buffers are tens of MiB)


def batch_lane_memory(case: Case, algorithm: str) -> float:
    """Compiled memory of a one-lane vmapped gradient with ``max_steps``-long records (the longest a batch
    reruns a lane with), cached per algorithm."""
    if algorithm not in _BATCH_LANE_MEMORY:
        p = case.problem
        f = pss.make_gradient_fn(p, SOLVER, algorithm, rtol=case.rtol, atol=case.atol, max_steps=MAX_STEPS,
                                 max_saved_steps=MAX_STEPS)
        batched = pss.jit(jax.vmap(lambda s: f(p.set_stiffness(p.params, s))))
        _BATCH_LANE_MEMORY[algorithm] = _memory(batched.lower(jnp.ones(1)).compile())
    return _BATCH_LANE_MEMORY[algorithm]


def prepare_pss_batch(case: Case, algorithm: str, mem_cap: float) -> Prepared:
    mem = float("nan")
    if case.size >= PREFLIGHT_B:
        mem = case.size * batch_lane_memory(case, algorithm)
        _check_memory(mem, mem_cap, f"predicted memory (B x the B = 1 footprint {mem / case.size / 2**20:.0f} MiB)")
    backend = pss.backends.get("jax")
    solver = backend.solver(SOLVER)
    options = pss.Options(rtol=case.rtol, atol=case.atol, max_steps=MAX_STEPS).for_method(solver)
    choice = pss.backends.Choice(pss.sensitivity.get(algorithm))
    t = time.perf_counter()
    run_batch = backend.gradient_batch(case.problem, case.grid, solver, choice, options, "cpu")  # traces and compiles
    compile_s = time.perf_counter() - t

    def run():
        res = run_batch()
        return res, res.run_time_s

    def extract(res):
        grads = np.stack([ravel_pytree(r.grad)[0] for r in res.results])
        stats = {k: [r.stats.get(k, 0) for r in res.results] for k in res.results[0].stats}
        return grads, _status([int(r.status) for r in res.results]), _pss_steps(stats)

    return Prepared(run, extract, compile_s, mem)


def prepare_casadi(case: Case, mode: str) -> Prepared:
    import casadi as ca

    p = case.problem
    theta0 = np.asarray(ravel_pytree(p.params)[0])
    n, m = p.y0.size, theta0.size
    t = time.perf_counter()
    sym = getattr(ca, case.casadi_sym)
    x, ps = sym.sym("x", n), sym.sym("p", m)
    opts = {"abstol": case.atol, "reltol": case.rtol, "max_num_steps": MAX_STEPS}
    F = ca.integrator("F", "cvodes", {"x": x, "p": ps, "ode": case.casadi_ode(x, ps)}, float(p.tspan[0]),
                      float(p.tspan[1]), opts)
    P = ca.MX.sym("P", m)
    L = case.casadi_loss(F(x0=ca.DM(p.y0.tolist()), p=P)["xf"])
    seed = ca.DM.eye(m) if mode == "forward sensitivities" else ca.DM.ones(1, 1)
    G = ca.Function("grad", [P], [L, ca.jtimes(L, P, seed, mode == "adjoint")])
    build_s = time.perf_counter() - t
    if case.grid is None:
        thetas = [theta0]
    else:
        thetas = [np.asarray(ravel_pytree(p.set_stiffness(p.params, s))[0]) for s in case.grid]

    def run():
        t = time.perf_counter()
        try:
            with C.quiet_fds():
                outs = [G(th) for th in thetas]
        except RuntimeError as e:
            lines = str(e).splitlines()
            outs = next((l.split(": ", 1)[-1] for l in lines if "returned" in l), lines[0])[:80]
        return outs, time.perf_counter() - t

    def extract(outs):
        if isinstance(outs, str):
            return np.full((len(thetas), m), np.nan), f"failed: {outs}", "–"
        return np.stack([np.asarray(o[1]).ravel() for o in outs]), "Success", "–"

    return Prepared(run, extract, 0.0, casadi_build_s=build_s)


def prepare_diffrax(case: Case, mem_cap: float) -> Prepared:
    import diffrax as dfx

    p = case.problem
    term = dfx.ODETerm(lambda t, y, args: p.rhs(t, y, args))
    t0, t1 = p.tspan
    y0, stops = jnp.asarray(p.y0), jnp.asarray(p.saveat)

    def loss(params):
        sol = dfx.diffeqsolve(
            term, dfx.Kvaerno5(), t0, t1, None, y0, args=params, saveat=dfx.SaveAt(t1=True),
            stepsize_controller=dfx.PIDController(rtol=case.rtol, atol=case.atol), max_steps=MAX_STEPS,
            adjoint=dfx.RecursiveCheckpointAdjoint(), throw=False,
        )
        ok = sol.result == dfx.RESULTS.successful
        return p.loss_fn(stops, sol.ys, params), (ok, sol.stats["num_accepted_steps"], sol.stats["num_rejected_steps"])

    vg = jax.value_and_grad(loss, has_aux=True)
    if case.grid is None:
        fn, arg = jax.jit(vg), p.params
    else:
        fn, arg = jax.jit(jax.vmap(lambda s: vg(p.set_stiffness(p.params, s)))), jnp.asarray(case.grid)
    t = time.perf_counter()
    compiled = fn.lower(arg).compile()
    compile_s = time.perf_counter() - t
    mem = _memory(compiled)
    _check_memory(mem, mem_cap)

    def run():
        t = time.perf_counter()
        out = jax.block_until_ready(compiled(arg))
        return out, time.perf_counter() - t

    def extract(out):
        (_, (ok, acc, rej)), g = jax.device_get(out)
        g = jax.tree_util.tree_map(lambda a: np.atleast_2d(np.asarray(a)) if case.grid is None else np.asarray(a), g)
        grads = np.concatenate([np.asarray(g[k]).reshape(np.asarray(g[k]).shape[0], -1) for k in sorted(g)], axis=1)
        ok = np.atleast_1d(ok)
        status = "Success" if ok.all() else f"{int((~ok).sum())}/{ok.size} lanes failed"
        return grads, status, f"{np.mean(acc):.0f}/{np.mean(rej):.0f}"

    return Prepared(run, extract, compile_s, mem)


def method_names(args, family) -> list[tuple[str, str]]:
    """(method label, library) of every method measured on ``family``."""
    out = [(f"pss {SOLVER} + {a}", "pystiffsens") for a in args.sensitivities]
    if not args.no_casadi:
        out += [(f"CasADi CVODES {m}", "casadi") for m in CVODES_MODES]
    if not args.no_diffrax and (family == "batch" or not args.quick):  # quick: diffrax's compile is the costliest
        out.append((DIFFRAX, "diffrax"))
    return out


def prepare(case: Case, method: str, args) -> Prepared:
    mem_cap = args.mem_cap_gib * 2**30
    if method.startswith("pss "):
        algorithm = method.split(" + ", 1)[1]
        if case.grid is not None:
            return prepare_pss_batch(case, algorithm, mem_cap)
        return prepare_pss(case, algorithm, mem_cap)
    if method.startswith("CasADi"):
        return prepare_casadi(case, method.removeprefix("CasADi CVODES "))
    return prepare_diffrax(case, mem_cap)


# ----------------------------------------------------------------------------- measuring
def predict(history, size):
    """Predicted (run s, compile s, why) at ``size`` from the two largest sizes a method has run."""
    if not history:
        return 0.0, 0.0, ""
    s0, r0, c0 = history[-1]
    k_run, k_comp = 1.0, 0.0
    if len(history) >= 2:
        s1, r1, c1 = history[-2]
        k_run = max(1.0, math.log(r0 / r1) / math.log(s0 / s1)) if r0 > 0 and r1 > 0 else 1.0
        k_comp = max(0.0, math.log(c0 / c1) / math.log(s0 / s1)) if c0 > 0.05 and c1 > 0.05 else 0.0
    ratio = size / s0
    return r0 * ratio ** k_run, c0 * ratio ** k_comp, f"from {s0} (run {r0:.3g} s, compile {c0:.3g} s; exponents {k_run:.2f}, {k_comp:.2f})"


def measure(case: Case, method: str, library: str, args, history, blocked) -> dict:
    """One CSV row: the case timed, or skipped with the reason."""
    knob = KNOBS[case.family]
    row = {"family": case.family, "knob": knob, "size": case.size, "detail": case.detail, "method": method,
           "library": library, "run_s_min": np.nan, "run_s_median": np.nan, "repeats": 0, "compile_s": np.nan,
           "memory_bytes": np.nan, "status": "", "steps": "", "grad_diff": np.nan, "grad_reference": "",
           "skipped": "", "grads": None}
    if blocked.get(method):
        row["skipped"] = blocked[method]
        return row
    run_p, comp_p, why = predict(history, case.size)
    if run_p > args.cap or comp_p > args.compile_cap:
        what = f"predicted run {run_p:.3g} s > cap {args.cap:g} s" if run_p > args.cap else \
            f"predicted compile {comp_p:.3g} s > cap {args.compile_cap:g} s"
        row["skipped"] = f"{what} ({why})"
        return row
    C.progress(f"{case.family} {knob}={case.size}: {method}")
    try:
        prep = prepare(case, method, args)
        times, out = [], None
        while not times or (sum(times) < args.cap and (len(times) < args.repeats or (
                len(times) < MAX_REPEATS and sum(times) < args.sample_s))):
            out, dt = prep.run()
            times.append(dt)
    except Skip as e:
        row["skipped"] = str(e)
        blocked[method] = f"skipped at a smaller size: {e}"
        return row
    except Exception as e:  # noqa: BLE001  (a failure is a result: record it, keep going)
        msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:160]
        if isinstance(e, ValueError) and "memory" in str(e).lower():
            row["skipped"] = f"refused by pystiffsens: {msg}"
            blocked[method] = f"skipped at a smaller size: {msg}"
        else:
            row["status"] = f"error: {msg}"
            if "RESOURCE_EXHAUSTED" in str(e):
                blocked[method] = f"out of memory at a smaller size: {msg}"
        return row
    grads, status, steps = prep.extract(out)
    compile_s = prep.compile_s if prep.casadi_build_s is None else prep.casadi_build_s + max(times[0] - min(times), 0.0)
    row.update(run_s_min=min(times), run_s_median=C.median(times), repeats=len(times), compile_s=compile_s,
               memory_bytes=prep.memory_bytes, status=status, steps=steps, grads=grads)
    history.append((case.size, min(times), compile_s))  # a failed run's cost predicts too
    return row


REFERENCE_ORDER = ["ReverseDiffAdjoint", "ForwardDiffSensitivity", "ForwardSensitivity"]


def add_gradient_diffs(rows):
    """grad_diff of each row of one size: max_j |g_j - ref_j| / max_j |ref_j|, worst lane."""
    ok = {r["method"]: r for r in rows if r["status"] == "Success" and r["grads"] is not None}
    ref_name = next((f"pss {SOLVER} + {a}" for a in REFERENCE_ORDER if f"pss {SOLVER} + {a}" in ok),
                    next(iter(ok), None))
    if ref_name is None:
        return
    ref = ok[ref_name]["grads"]
    for r in rows:
        if r["grads"] is not None and r["grads"].shape == ref.shape:
            scale = np.max(np.abs(ref), axis=1)
            r["grad_diff"] = float(np.max(np.max(np.abs(r["grads"] - ref), axis=1) / scale))
            r["grad_reference"] = ref_name


def run_family(family, sizes, args, done=lambda rows: None):
    """Every method at every size of ``family`` (size by size); ``done(rows)`` after each size."""
    methods = method_names(args, family)
    histories = {m: [] for m, _ in methods}
    blocked: dict = {}
    rows = []
    for size in sizes:
        case = BUILDERS[family](size)
        size_rows = [measure(case, m, lib, args, histories[m], blocked) for m, lib in methods]
        add_gradient_diffs(size_rows)
        rows += size_rows
        done(size_rows)
        jax.clear_caches()
        pss.backends.default().programs.clear()  # the batches' compiled programs
    return rows


# ----------------------------------------------------------------------------- output
def write_csv(path, rows, meta):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as fh:
        fh.writelines(f"# {line}\n" for line in meta)
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in CSV_FIELDS})


def read_csv(path):
    with open(path) as fh:
        lines = fh.read().splitlines()
    meta = [l[2:] for l in lines if l.startswith("# ")]
    rows = list(csv.DictReader(l for l in lines if not l.startswith("#")))
    for r in rows:
        r["size"] = int(r["size"])
        for k in ("run_s_min", "run_s_median", "compile_s", "memory_bytes", "grad_diff"):
            r[k] = float(r[k]) if r[k] not in ("", "nan") else float("nan")
    return meta, rows


def _ok(r):
    return r["status"] == "Success" and np.isfinite(r["run_s_min"])


def exponents(rows):
    """(k over all successful sizes, k over the largest three, sizes) of one method's rows."""
    ok = sorted((r for r in rows if _ok(r)), key=lambda r: r["size"])
    sizes = [r["size"] for r in ok]
    times = [r["run_s_min"] for r in ok]
    return C.loglog_slope(sizes, times), C.loglog_slope(sizes[-3:], times[-3:]), sizes


def family_markdown(family, rows) -> list[str]:
    knob = KNOBS[family]
    sizes = sorted({r["size"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    table, notes = [], []
    for m in methods:
        mrows = {r["size"]: r for r in rows if r["method"] == m}
        cells = []
        for s in sizes:
            r = mrows.get(s)
            if r is None:
                cells.append("")
            elif r["skipped"]:
                cells.append("skip")
                notes.append(f"- {m}, {knob}={s}: skipped, {r['skipped']}")
            elif np.isfinite(r["run_s_min"]):
                cells.append(C.fmt(1e3 * r["run_s_min"], ".3g") + ("" if r["status"] == "Success" else f" ({r['status']})"))
            else:
                cells.append("error")
                notes.append(f"- {m}, {knob}={s}: {r['status']}")
        k_all, k_top, used = exponents(mrows.values())
        comp = [r["compile_s"] for r in mrows.values() if np.isfinite(r["compile_s"])]
        diffs = [r["grad_diff"] for r in mrows.values() if np.isfinite(r["grad_diff"])]
        table.append([m, *cells, C.fmt(k_all, ".2f"), C.fmt(k_top, ".2f"), ", ".join(map(str, used)) or "–",
                      f"{min(comp):.1f}–{max(comp):.1f}" if comp else "–", C.fmt(max(diffs), ".1e") if diffs else "–"])
    headers = ["method", *(f"{knob}={s}" for s in sizes), "exponent", "exponent, largest 3", "sizes fitted",
               "compile s", "max grad diff"]
    details = {r["size"]: r["detail"] for r in rows}
    refs = sorted({r["grad_reference"] for r in rows if r["grad_reference"]})
    out = [C.markdown_table(headers, table), ""]
    out.append("- run ms: minimum of the repeated compiled runs; exponent: least-squares slope of log(time) on "
               f"log({knob}) over the sizes fitted (the successful ones); compile s: min–max over the sizes")
    out.append("- sizes: " + "; ".join(f"{knob}={s}: {d}" for s, d in sorted(details.items())))
    if refs:
        out.append(f"- max grad diff: max over sizes (and lanes) of max_j |g_j - ref_j| / max_j |ref_j| against {', '.join(refs)} at the same size")
    return out + notes


def throughput_markdown(rows) -> list[str]:
    at = {r["method"]: r for r in rows if r["family"] == "batch" and r["size"] == THROUGHPUT_B and _ok(r)}
    cv = at.get("CasADi CVODES forward sensitivities")
    if cv is None:
        return [f"- throughput target not evaluated: no CVODES forward-sensitivity loop at B={THROUGHPUT_B} in this run"]
    out = [(f"- target: a pystiffsens batch of the {THROUGHPUT_B} ROBER gradients at least 10x faster than CVODES's "
            f"loop of forward-sensitivity gradients ({1e3 * cv['run_s_min']:.3g} ms); "
            "ratio = CVODES loop / pystiffsens batch:")]
    best = 0.0
    for m, r in at.items():
        if m.startswith("pss "):
            ratio = cv["run_s_min"] / r["run_s_min"]
            best = max(best, ratio)
            out.append(f"  - {m}: {1e3 * r['run_s_min']:.3g} ms -> {ratio:.2f}x")
    for m in ("CasADi CVODES adjoint", DIFFRAX):
        if m in at:
            out.append(f"  - (for scale) {m}: {1e3 * at[m]['run_s_min']:.3g} ms -> {cv['run_s_min'] / at[m]['run_s_min']:.2f}x")
    out.append(f"- best pystiffsens ratio {best:.2f}x -> {'**met**' if best >= 10 else '**not met**'}")
    return out


def markdown(meta, rows) -> str:
    out = ["# pystiffsens scaling benchmark", "", *meta]
    titles = {"batch": "Batch size (ROBER k2 grid, rtol 1e-8, atol 1e-10)",
              "params": "Parameter count (stiff neural ODE, rtol 1e-6, atol 1e-8)",
              "states": "State dimension (dense stiff system, rtol 1e-6, atol 1e-8)"}
    for fam in KNOBS:
        frows = [r for r in rows if r["family"] == fam]
        if frows:
            out += ["", f"## {titles[fam]}", "", *family_markdown(fam, frows)]
    if any(r["family"] == "batch" for r in rows):
        out += ["", "## Sweep throughput (issue 10)", "", *throughput_markdown(rows)]
    return "\n".join(out)


# ----------------------------------------------------------------------------- main
def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: B = 1, 32; P ~ 10; n = 3; short caps")
    ap.add_argument("--families", nargs="+", choices=list(KNOBS), default=list(KNOBS))
    ap.add_argument("--batch-sizes", nargs="+", type=int)
    ap.add_argument("--param-counts", nargs="+", type=int, help="target parameter counts (nearest MLP width)")
    ap.add_argument("--state-dims", nargs="+", type=int)
    ap.add_argument("--sensitivities", nargs="+", default=pss.sensitivity.names(), choices=pss.sensitivity.names())
    ap.add_argument("--no-casadi", action="store_true")
    ap.add_argument("--no-diffrax", action="store_true")
    ap.add_argument("--cap", type=float, help="per-case cap on the (predicted) run time, s (default 30; quick 3)")
    ap.add_argument("--compile-cap", type=float, help="cap on the predicted compile time, s (default 120; quick 30)")
    ap.add_argument("--mem-cap-gib", type=float, default=3.0, help="cap on a case's compiled memory, GiB")
    ap.add_argument("--repeats", type=int, help="timed runs per case at least (within --cap), minimum reported (default 3; quick 2)")
    ap.add_argument("--sample-s", type=float, help=f"cheap cases repeat (up to {MAX_REPEATS} runs) until their runs add up to this, s "
                    "(default 1; quick 0.2)")
    ap.add_argument("--csv", help="output CSV (default benchmarks/results/scaling.csv; quick: scaling_quick.csv)")
    ap.add_argument("--from-csv", help="print the Markdown of an earlier run's CSV and exit")
    args = ap.parse_args(argv)
    q = args.quick
    args.cap = args.cap or (3.0 if q else 30.0)
    args.compile_cap = args.compile_cap or (30.0 if q else 120.0)
    args.repeats = args.repeats or (2 if q else 3)
    args.sample_s = args.sample_s if args.sample_s is not None else (0.2 if q else 1.0)
    given = {"batch": args.batch_sizes, "params": args.param_counts, "states": args.state_dims}
    args.sizes = {f: sorted(given[f] or (QUICK_SIZES if q else DEFAULT_SIZES)[f]) for f in KNOBS}
    results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    args.csv = args.csv or os.path.join(results, "scaling_quick.csv" if q else "scaling.csv")
    return args


def main(argv=None):
    args = parse(argv)
    if args.from_csv:
        print(markdown(*read_csv(args.from_csv)))
        return
    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()
    meta = C.machine_info() + [
        f"- command: `python benchmarks/bench_scaling.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        (f"- pystiffsens solver {SOLVER}, max_steps={MAX_STEPS}; caps: run {args.cap:g} s, compile "
         f"{args.compile_cap:g} s, memory {args.mem_cap_gib:g} GiB; minimum of at least {args.repeats} runs "
         f"(cheap cases: up to {MAX_REPEATS} runs or {args.sample_s:g} s)"),
        f"- pystiffsens's persistent caches: {'on' if _compilation_cache.enabled() else 'off'} (compile times "
        f"{'may be cache hits' if _compilation_cache.enabled() else 'are fresh compilations'})",
    ]
    changed = [l for l in C._run(["git", "status", "--porcelain", "--", "pystiffsens"]).splitlines()
               if l.endswith(".py") and "julia" not in l]
    if changed:
        meta.append(f"- uncommitted engine files at the start: {', '.join(l.split(maxsplit=1)[-1] for l in changed)}")
    rows = []
    for fam in args.families:
        # the CSV is rewritten after every size, so an interrupted run keeps what it measured
        run_family(fam, args.sizes[fam], args, lambda size_rows: (rows.extend(size_rows), write_csv(args.csv, rows, meta)))
    meta.append(f"- load average at end: {C.load():.1f}; total run time {time.perf_counter() - t_start:.0f} s")
    write_csv(args.csv, rows, meta)
    print(markdown(meta, rows))
    C.progress(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
