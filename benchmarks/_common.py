"""Helpers shared by the benchmark scripts: machine description, interleaved timing,
error metrics, scipy Radau references, the compiled program of ``pss.solve`` and
Markdown tables."""

from __future__ import annotations

import contextlib
import csv
import datetime
import os
import platform
import subprocess
import sys
import time
from importlib import metadata

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def load():
    """The 1-minute load average, or NaN where the OS does not report it."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def machine_info() -> list[str]:
    """Date, CPU, load, versions and git state, one Markdown bullet each."""
    lscpu = _run(["lscpu"]).splitlines()
    field = lambda name, default="": next((l.split(":", 1)[1].strip() for l in lscpu if l.startswith(name)), default)
    model = field("Model name", platform.processor())
    hyper = field("Hypervisor vendor")
    model += f" (family {field('CPU family')} model {field('Model:')}{', ' + hyper + ' guest' if hyper else ''})"
    commit = _run(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    versions = ", ".join(
        f"{d} {_version(d)}" for d in ("jax", "jaxlib", "diffrax", "equinox", "casadi", "scipy", "numpy")
    )
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {model}, `nproc` = {os.cpu_count()} ({platform.machine()}, {platform.system()} {platform.release()}); no GPU",
        f"- load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (CPU shared with other jobs)",
        f"- python {platform.python_version()}; {versions}",
        f"- pystiffsens git {commit}{' + uncommitted changes' if dirty else ''}",
    ]


def time_interleaved(calls: dict, *, rounds: int = 15, budget_s: float = 10.0, min_rounds: int = 3,
                     per_call_s: float = 1.0, shuffle_seed: int | None = None, own_time: bool = False) -> dict:
    """Wall times of zero-argument blocking callables, run in interleaved rounds.

    Each round calls every entry still sampling once, so a burst of load from other
    processes hits all of them alike; with ``shuffle_seed``, in a new random order each
    round, so that no position in the round favours one. An entry samples until it has
    ``rounds`` times or, after ``min_rounds``, once its own times add up to ``per_call_s``;
    everything stops after ``budget_s`` (each entry keeps at least ``min_rounds``). With
    ``own_time``, a callable that returns a float reports its own time (e.g. a batch's
    compiled run, without building result objects). Returns name -> list of seconds.
    """
    times = {name: [] for name in calls}
    rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
    start = time.perf_counter()
    for r in range(rounds):
        over = time.perf_counter() - start > budget_s
        active = [n for n in calls if len(times[n]) < min_rounds
                  or (not over and sum(times[n]) < per_call_s)]
        if not active:
            break
        if rng is not None:
            active = [active[k] for k in rng.permutation(len(active))]
        for name in active:
            result = None  # free the last entry's outputs before the clock starts, not inside the next entry's time
            t = time.perf_counter()
            result = calls[name]()
            times[name].append(result if own_time and isinstance(result, float) else time.perf_counter() - t)
    return times


def first_call(fn):
    """(result, wall seconds, CPU seconds of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


class quiet_fds:
    """Silence C-level stdout/stderr (CasADi prints solver failures from C++)."""

    def __enter__(self):
        sys.stdout.flush(), sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1), os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc):
        os.dup2(self.saved[0], 1), os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)


def median(xs) -> float:
    return float(np.median(xs)) if len(xs) else float("nan")


def max_rel_err(y, ref, floor=1e-12) -> float:
    """max_i |y_i - ref_i| / |ref_i| over the components with |ref_i| > floor."""
    y, ref = np.asarray(y, float).ravel(), np.asarray(ref, float).ravel()
    mask = np.abs(ref) > floor
    if not np.all(np.isfinite(y[mask])):
        return float("nan")
    return float(np.max(np.abs(y[mask] - ref[mask]) / np.abs(ref[mask])))


def tol_scaled_err(y, ref, rtol, atol) -> float:
    """max_i |y_i - ref_i| / (atol + rtol |ref_i|): the error in units of the requested tolerance."""
    y, ref = np.asarray(y, float).ravel(), np.asarray(ref, float).ravel()
    return float(np.max(np.abs(y - ref) / (atol + rtol * np.abs(ref))))


def radau(fun, jac, y0, tspan, *, rtol=1e-12, atol=1e-15):
    """Final state of scipy's Radau IIA (order 5) with an exact Jacobian."""
    from scipy.integrate import solve_ivp

    sol = solve_ivp(fun, tspan, np.asarray(y0, float), method="Radau", rtol=rtol, atol=atol, jac=jac)
    if sol.status != 0:
        raise RuntimeError(f"Radau reference failed: {sol.message}")
    return sol.y[:, -1], sol


def numpy_rhs(rhs, params):
    """(fun, jac) in NumPy for scipy, from a pystiffsens JAX right-hand side."""
    import jax

    f = jax.jit(lambda t, y: rhs(t, y, params))
    j = jax.jit(jax.jacfwd(lambda t, y: rhs(t, y, params), argnums=1))
    return (lambda t, y: np.asarray(f(t, y))), (lambda t, y: np.asarray(j(t, y)))


def solve_program(problem, solver, *, rtol, atol, dt=None, max_steps, saved_steps=None):
    """The compiled program ``pss.solve`` runs (:func:`pystiffsens.programs.solve`), jitted here with ``pss.jit``.

    Returns ``(fn, args, saved)``: ``fn(*args)`` is ``(ys, info, step_t, step_y)`` with ``info``
    the counters of :data:`pystiffsens.programs.INFO` (see :func:`solve_info`). ``saved_steps``
    is the length of its per-step records: None, the length ``pss.solve`` settles at for
    this problem (the first of the backend's record lengths that holds the solve, found by
    one ``pss.solve`` call); 0, none (the bare loop, what ``pss.solve(..., save_steps=False)``
    runs); an integer, that length. Nothing is compiled until ``fn`` is first called.
    """
    import pystiffsens as pss
    from pystiffsens import programs
    from pystiffsens.backends.native import inputs

    backend = pss.backends.default()
    so = backend.solver(solver)
    options = pss.Options(rtol=rtol, atol=atol, dt=dt, max_steps=max_steps).for_method(
        so, problem.tspan[1] - problem.tspan[0])
    inp = inputs(problem)
    spec = programs.Spec(problem.rhs, inp.structure, so)
    if saved_steps is None:
        lengths = backend.record_lengths(spec, inp, options)
        steps = pss.solve(problem, so, rtol=rtol, atol=atol, dt=dt, max_steps=max_steps).stats["n_steps"]
        saved_steps = next((length for length in lengths if steps < length), lengths[-1])
    return pss.jit(programs.solve(spec, saved_steps)), inp.args(options), saved_steps


def solve_info(info) -> dict:
    """``{"status", "n_steps", ..., "buffer_full"}`` (ints) of a solve program's ``info`` vector."""
    from pystiffsens.programs import INFO

    return {name: int(value) for name, value in zip(INFO, np.asarray(info))}


def write_rows(path: str, rows: list, fieldnames=None) -> None:
    """``rows`` (dicts) as a CSV file at ``path``, with the keys of the first row unless ``fieldnames``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames or rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def fmt(x, spec=".3g"):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if isinstance(x, (float, np.floating)) and not np.isfinite(x):
        return "nan"
    return format(x, spec)


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def banner(title):
    print(f"\n## {title}\n", flush=True)


def add_tangent_rule_argument(parser) -> None:
    """``--iteration-matrix-tangents RULE``, for :func:`tangent_rule` (the rules: ``solvers.partitioned.TANGENT_RULES``)."""
    from pystiffsens.solvers.partitioned import TANGENT_RULES

    parser.add_argument("--iteration-matrix-tangents", choices=TANGENT_RULES,
                        help="differentiate every iteration-matrix solve by this rule "
                             "(pystiffsens.solvers.partitioned.iteration_matrix_tangents), to compare the two; "
                             "turns the program cache off, whose keys do not see the rule")


@contextlib.contextmanager
def tangent_rule(rule):
    """Everything traced in this block differentiates its iteration-matrix solves by ``rule`` (None: as the
    library chooses). The program cache's keys do not see the rule, so a rule turns that cache off (it reads
    ``PYSTIFFSENS_NO_COMPILATION_CACHE`` on every compilation)."""
    if rule is None:
        yield
        return
    from pystiffsens.solvers.partitioned import iteration_matrix_tangents

    os.environ["PYSTIFFSENS_NO_COMPILATION_CACHE"] = "1"
    with iteration_matrix_tangents(rule):
        yield


def progress(msg):
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loglog_slope(sizes, times) -> float:
    """Least-squares slope of log(time) against log(size): the growth exponent k of time ~ size^k.

    Non-finite or non-positive times are left out; NaN when fewer than two distinct sizes remain.
    """
    sizes, times = np.asarray(sizes, float), np.asarray(times, float)
    keep = np.isfinite(times) & (times > 0) & np.isfinite(sizes) & (sizes > 0)
    x, y = np.log(sizes[keep]), np.log(times[keep])
    if np.unique(x).size < 2:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])
