"""Where a PEtab model's likelihood or gradient spends its time, by XLA operation.

    python benchmarks/profile_petab.py --collection Benchmark-Models-PEtab/Benchmark-Models \\
        --models Alkan_SciSignal2018 [--sensitivity ReverseDiffAdjoint] [--top 12]

For each model: load it, call ``problem.nllh()`` (or ``problem.gradient(sensitivity=...)``)
once to compile, time ``--repeats`` warm calls, then run one more call under JAX's profiler
(``jax.profiler.trace``) and add up, from the profile itself (``jax.profiler.ProfileData``),
the XLA:CPU operations it ran: each thunk's own time (a ``while`` or ``cond`` loop counts
without the operations inside it, which count under their own names), grouped by HLO name
with the number suffix dropped (``triangular_solve.13`` is ``triangular_solve``). In a
solver step, ``lu`` is LAPACK's ``getrf`` (the LU factorisation of the iteration matrix) and
``triangular_solve`` LAPACK's ``trsm`` (two per stage solve); the fusions are the model's
right-hand side, its Jacobian and the step's vector arithmetic. The profiler adds a cost to
every operation, so the profiled call takes longer than a warm call and the many small
fusions count high in the shares. The solver and tolerances are ``PetabProblem``'s defaults
(Rodas5P, rtol 1e-8, atol 1e-10, as ``bench_petab.py``). Writes
``results/petab_profile.csv`` (model, call, operation, calls, ms, share, warm and profiled
seconds) and prints a table per model.

The profiler keeps every operation of the call in memory: Smith_BMCSystBiol2013's likelihood
(3 million operations) wrote a 386 MB profile, and Lang_PLOSComputBiol2024's did not fit in
24 GB (benchmarks/README.md, section 8).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common
import jax
from bench_petab import problem_file

import pystiffsens.petab as petab

RESULTS = Path(__file__).parent / "results"

#: An XLA operation's name in a profile (``lu.36``, ``bitcast_concatenate_fusion.1``, ``dynamic-update-slice``):
#: lower case, where the runtime's own markers are not (``ThunkExecutor::Execute``, ``ParseArguments``,
#: ``end: lu.36``, ``np.asarray(jax.Array)``, Python frames as ``$file.py:12 name``).
_OPERATION = re.compile(r"[a-z][a-z0-9_.\-]*")


def operation_times(trace_dir: str) -> dict[str, tuple[int, float]]:
    """``{operation group: (calls, own seconds)}`` from the profile JAX's profiler wrote under ``trace_dir``.

    Read from the XSpace file itself (``jax.profiler.ProfileData``): its conversion to a
    Perfetto trace keeps the first million events only. Every thread counts: XLA:CPU runs
    operations on its own threads and on the calling one.
    """
    path = sorted(Path(trace_dir).rglob("*.xplane.pb"))[-1]
    plane = jax.profiler.ProfileData.from_file(str(path)).find_plane_with_name("/host:CPU")
    own: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    for line in plane.lines:
        events = sorted(((e.start_ns, e.duration_ns, e.name) for e in line.events if _OPERATION.fullmatch(e.name)),
                        key=lambda e: (e[0], -e[1]))
        open_events: list = []  # (end time, group) of the operations around the current one
        for start, duration, name in events:
            while open_events and open_events[-1][0] <= start:
                open_events.pop()
            group = re.sub(r"\.\d+$", "", name)
            # Each operation's own time: its duration less that of the operations nested in it on the same thread.
            if open_events:
                own[open_events[-1][1]] -= duration
            own[group] += duration
            calls[group] += 1
            open_events.append((start + duration, group))
    return {group: (calls[group], own[group] * 1e-9) for group in own}


def profile(path: Path, sensitivity: str | None, repeats: int, trace_dir: Path | None = None) -> dict:
    """Load the model at ``path`` and profile its nllh (``sensitivity`` None) or gradient; keep the trace in
    ``trace_dir`` (None: a temporary folder, removed)."""
    problem = petab.load(problem_file(path))
    if sensitivity is None:
        call = problem.nllh
    else:
        def call():
            return problem.gradient(sensitivity=sensitivity)
    _common.progress(f"{path.name}: first call")
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        warm.append(time.perf_counter() - start)
    with contextlib.ExitStack() as stack:
        folder = str(trace_dir / path.name) if trace_dir else stack.enter_context(tempfile.TemporaryDirectory())
        _common.progress(f"{path.name}: profiled call")
        start = time.perf_counter()
        with jax.profiler.trace(folder):
            call()
        profiled = time.perf_counter() - start
        operations = operation_times(folder)
    return dict(first=first, warm=statistics.median(warm), profiled=profiled, operations=operations,
                states=len(problem.model.state_ids), conditions=len(problem.conditions))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", type=Path, required=True, help="the Benchmark-Models folder of a clone")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--sensitivity", help="profile the gradient with this sensitivity (default: the nllh)")
    parser.add_argument("--repeats", type=int, default=3, help="warm calls timed before the profiled one")
    parser.add_argument("--top", type=int, default=12, help="operation groups listed per model")
    parser.add_argument("--out", type=Path, default=RESULTS / "petab_profile.csv")
    parser.add_argument("--trace-dir", type=Path,
                        help="keep each model's profile here (an XSpace file, for TensorBoard or xprof)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: give at least 1 (the warm calls whose median is reported)")
    print("\n".join(_common.machine_info()))
    what = "nllh" if args.sensitivity is None else f"gradient {args.sensitivity}"
    rows = []
    for name in args.models:
        result = profile(args.collection / name, args.sensitivity, args.repeats, args.trace_dir)
        total = sum(seconds for _, seconds in result["operations"].values())
        print(f"\n{name} ({result['states']} states, {result['conditions']} conditions), {what}: first call "
              f"{result['first']:.1f} s, warm {result['warm']:.3f} s, profiled {result['profiled']:.3f} s "
              f"(operations {total:.3f} s)\n")
        print("| operation | calls | ms | share |\n|---|---|---|---|")
        ranked = sorted(result["operations"].items(), key=lambda item: -item[1][1])
        for group, (calls, seconds) in ranked:
            row = dict(model=name, call=what, operation=group, calls=calls, ms=1e3 * seconds,
                       share=seconds / total, warm_s=result["warm"], profiled_s=result["profiled"])
            rows.append(row)
        for group, (calls, seconds) in ranked[: args.top]:
            print(f"| {group} | {calls} | {1e3 * seconds:.1f} | {seconds / total:.1%} |")
        _common.write_rows(str(args.out), rows)  # after each model, so that a model that fails keeps the others
    print(f"\nRows written to {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
