"""Every model of a local clone of the PEtab benchmark collection through ``pystiffsens.petab``.

    git clone https://github.com/Benchmarking-Initiative/Benchmark-Models-PEtab
    python benchmarks/bench_petab.py --collection Benchmark-Models-PEtab/Benchmark-Models

Per model (each in a child process of its own, so that a model that takes too long or
crashes is a row, not the end; the child prints its row after each phase, so a model stopped
by ``--timeout`` keeps the phases it finished and says which one it was in): states,
reactions, estimated parameters, conditions, the status (or the construct refused, from the
error message), the log-likelihood at the nominal parameters and AMICI's reference value for
it, the time of ``load``, of the first ``nllh`` call (tracing and compilation; also the seconds
JAX reports for its tracing, lowering and XLA compilation, ``jax.monitoring``) and the median
of later calls, and the same for the gradient with each sensitivity (forward mode, the
discrete adjoint, the continuous adjoints), at rtol 1e-8 and atol 1e-10 with Rodas5P. Writes
``results/petab.csv`` and prints a Markdown table.
``amici_petab.py`` gives AMICI's side (it runs in AMICI's own environment).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common
import yaml

RESULTS = Path(__file__).parent / "results"

SENSITIVITIES = ("ForwardDiffSensitivity", "ReverseDiffAdjoint", "InterpolatingAdjoint", "GaussAdjoint")

#: Log-likelihoods at the nominal parameters computed by AMICI (AMICI's public reference data; source
#: and commit in the file).
AMICI_LLH = yaml.safe_load((Path(__file__).parent.parent / "tests" / "data" / "petab" / "references.yaml").read_text())


#: JAX's compilation events (``jax.monitoring``) -> the phase of a first call they time.
PHASES = {"/jax/core/compile/jaxpr_trace_duration": "trace", "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
          "/jax/core/compile/backend_compile_duration": "compile"}
_phase_seconds: dict[str, float] = {}


def _count_phases() -> None:
    """Add the seconds of JAX's compilation events to ``_phase_seconds`` from now on (in the child process)."""
    import jax.monitoring

    def listen(event: str, duration: float, **_) -> None:
        if event in PHASES:
            _phase_seconds[PHASES[event]] = _phase_seconds.get(PHASES[event], 0.0) + duration

    jax.monitoring.register_event_duration_secs_listener(listen)


def _timed(call, repeats: int) -> tuple[float, dict, float, object]:
    """(first call's seconds, its seconds in each of :data:`PHASES` by name, median of ``repeats`` later calls, last
    result)."""
    _phase_seconds.clear()
    start = time.perf_counter()
    out = call()
    first = time.perf_counter() - start
    phases = {phase: _phase_seconds.get(phase, 0.0) for phase in PHASES.values()}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return first, phases, statistics.median(times), out


def problem_file(path: Path) -> Path:
    """The model folder's PEtab YAML: ``<name>.yaml``, else its only YAML file."""
    named = path / f"{path.name}.yaml"
    found = [named] if named.exists() else sorted(path.glob("*.yaml"))
    if len(found) != 1:
        raise FileNotFoundError(f"{path}: no single PEtab YAML file (found {[f.name for f in found]})")
    return found[0]


def one_model(path: Path, solver: str, rtol: float, atol: float, repeats: int, sensitivities) -> dict:
    """The row of one model (runs in the child process), printed as JSON after each phase with the next phase in
    ``"running"``."""
    import libsbml

    import pystiffsens.petab as petab

    _count_phases()
    name = path.name
    row = {"model": name, "solver": solver, "rtol": rtol, "atol": atol, "amici_llh": AMICI_LLH.get(name)}
    start = time.perf_counter()
    try:
        problem = petab.load(problem_file(path))
    except (ValueError, FileNotFoundError) as error:
        return row | {"status": f"refused: {error}"}
    row["load_s"] = time.perf_counter() - start
    sbml = libsbml.readSBMLFromFile(str(problem.table.sbml_path)).getModel()
    row |= {"states": len(problem.model.state_ids), "reactions": sbml.getNumReactions(),
            "estimated": len(problem.estimated), "conditions": len(problem.conditions)}
    _report(row, "nllh")
    first, phases, median, result = _timed(lambda: problem.evaluate(solver=solver, rtol=rtol, atol=atol), repeats)
    row |= {"llh": -result.nllh, "nllh_first_s": first, "nllh_s": median, "status": result.status.name}
    row |= {f"nllh_first_{phase}_s": seconds for phase, seconds in phases.items()}
    for algorithm in sensitivities:
        _report(row, f"{algorithm} gradient")
        first, phases, median, result = _timed(lambda a=algorithm: problem.evaluate(
            gradient=True, solver=solver, sensitivity=a, rtol=rtol, atol=atol), repeats)
        row |= {f"{algorithm}_first_s": first, f"{algorithm}_s": median, f"{algorithm}_status": result.status.name,
                f"{algorithm}_grad": json.dumps(result.gradient)}
        row |= {f"{algorithm}_first_{phase}_s": seconds for phase, seconds in phases.items()}
    return row


def _report(row: dict, running: str) -> None:
    """Print ``row`` as a JSON line, with the phase now starting in ``"running"``."""
    print(json.dumps(row | {"running": running}), flush=True)


def _last_row(stdout) -> dict | None:
    """The last JSON row a child printed (``stdout`` as text or bytes, possibly cut short), or None."""
    text = stdout.decode(errors="replace") if isinstance(stdout, bytes) else stdout or ""
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", type=Path, required=True, help="the Benchmark-Models folder of a clone")
    parser.add_argument("--models", nargs="*", help="model names (default: every model of the collection)")
    parser.add_argument("--solver", default="Rodas5P")
    parser.add_argument("--sensitivities", nargs="*", default=list(SENSITIVITIES))
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--atol", type=float, default=1e-10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    parser.add_argument("--out", type=Path, default=RESULTS / "petab.csv")
    _common.add_tangent_rule_argument(parser)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run one model here and print its row as JSON
    args = parser.parse_args(argv)
    if args.one:
        with _common.tangent_rule(args.iteration_matrix_tangents):
            row = one_model(args.collection / args.one, args.solver, args.rtol, args.atol, args.repeats,
                            args.sensitivities)
        print(json.dumps(row))
        return 0
    names = args.models or sorted(p.name for p in args.collection.iterdir() if p.is_dir())
    print("\n".join(_common.machine_info()))
    rows = []
    for k, name in enumerate(names, 1):
        _common.progress(f"[{k}/{len(names)}] {name}")
        command = [sys.executable, __file__, "--collection", str(args.collection), "--one", name, "--solver",
                   args.solver, "--rtol", str(args.rtol), "--atol", str(args.atol), "--repeats", str(args.repeats),
                   "--sensitivities", *args.sensitivities]
        if args.iteration_matrix_tangents:
            command += ["--iteration-matrix-tangents", args.iteration_matrix_tangents]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
            row = _last_row(done.stdout) if done.returncode == 0 else None
            if row is None:
                row = _last_row(done.stdout) or {"model": name}
                row["status"] = f"crashed in {row.pop('running', 'loading')}: {done.stderr.strip().splitlines()[-1:]}"
        except subprocess.TimeoutExpired as stopped:
            row = _last_row(stopped.stdout) or {"model": name}
            row["status"] = f"timeout after {args.timeout:g} s in {row.pop('running', 'loading')}"
        row["wall_s"] = time.perf_counter() - start
        rows.append(row)
        _common.progress(f"    {row.get('status')}: llh {row.get('llh')} (AMICI {row.get('amici_llh')})")
        # Rewritten after every model, so that an interrupted run keeps the rows it has.
        _common.write_rows(str(args.out), rows, list(dict.fromkeys(key for row in rows for key in row)))
    shown = ["model", "states", "reactions", "estimated", "conditions", "status", "llh", "amici_llh", "nllh_s",
             "nllh_first_s", *(f"{a}_s" for a in args.sensitivities)]
    print(_common.markdown_table(shown, [[_common.fmt(row.get(c)) for c in shown] for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
