"""AMICI (C++/CVODES) on PEtab models: the peer that ``bench_petab.py`` compares with.

Runs in AMICI's own environment, not pystiffsens's (AMICI builds from its PyPI sdist and
compiles each model to C++):

    apt-get install swig libopenblas-dev libhdf5-serial-dev
    python3 -m venv /opt/amici && /opt/amici/bin/pip install amici petab scipy
    PATH=/opt/amici/bin:$PATH /opt/amici/bin/python benchmarks/amici_petab.py \\
        --collection Benchmark-Models-PEtab/Benchmark-Models --models Boehm_JProteomeRes2014 Fujita_SciSignal2010

(the venv's ``bin`` first on ``PATH``, so that model builds use the SWIG AMICI was built
with). Per model: import (code generation and compilation) time, the log-likelihood at the
nominal parameters, and medians of the time of the llh alone, of the forward-sensitivity
gradient and of the adjoint gradient (on the parameters' PEtab scales), at rtol 1e-8 and
atol 1e-16 as AMICI's own benchmark tests use. The mapping from PEtab to AMICI and the
ExpData objects are built once per model; ``median_s`` times ``simulate_petab`` (parameters
filled in, simulations, llh and its gradient summed), ``simulations_median_s`` AMICI's
``run_simulations`` alone. Writes ``results/petab_amici.csv`` (one row per model and method, with the
gradient as JSON) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import amici.sim.sundials as sundials
import pandas as pd
import petab.v1 as petab
from amici.importers.petab.v1 import import_petab_problem
from amici.sim.sundials.petab.v1 import LLH, RDATAS, SLLH, create_edatas, simulate_petab
from amici.sim.sundials.petab.v1._parameter_mapping import create_parameter_mapping

RESULTS = Path(__file__).parent / "results"


def _median_time(call, repeats: int) -> tuple[float, object]:
    out = call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def run_model(path: Path, build_dir: Path, rtol: float, atol: float, repeats: int,
              max_steps: int | None = None) -> list[dict]:
    name = path.name
    problem = petab.Problem.from_yaml(path / f"{name}.yaml")
    start = time.perf_counter()
    model = import_petab_problem(problem, output_dir=build_dir / name, compile_=True)
    import_s = time.perf_counter() - start
    mapping = create_parameter_mapping(problem, problem.get_simulation_conditions_from_measurement_df(),
                                       scaled_parameters=True, amici_model=model)
    x = problem.x_nominal_free_scaled
    parameters = dict(zip(problem.x_free_ids, x))
    edatas = create_edatas(amici_model=model, petab_problem=problem,
                           simulation_conditions=problem.get_simulation_conditions_from_measurement_df())
    rows = []
    for method, label in ((None, "llh"), (sundials.SensitivityMethod.forward, "forward"),
                          (sundials.SensitivityMethod.adjoint, "adjoint")):
        solver = model.create_solver()
        solver.set_relative_tolerance(rtol)
        solver.set_absolute_tolerance(atol)
        if max_steps is not None:  # forward and backward problems alike
            solver.set_max_steps(max_steps)
            solver.set_max_steps_backward_problem(max_steps)
        if method is not None:
            solver.set_sensitivity_order(sundials.SensitivityOrder.first)
            solver.set_sensitivity_method(method)

        def call(solver=solver):
            return simulate_petab(problem, amici_model=model, solver=solver, problem_parameters=parameters,
                                  edatas=edatas, parameter_mapping=mapping, scaled_parameters=True,
                                  scaled_gradients=True)

        def core(solver=solver):  # the simulations alone, parameters already in the ExpData objects
            return sundials.run_simulations(model, solver, edatas)

        seconds, result = _median_time(call, repeats)
        core_seconds, _ = _median_time(core, repeats)
        statuses = sorted({sundials.simulation_status_to_str(r.status) for r in result[RDATAS]})
        grad = result.get(SLLH) if method is not None else None
        rows.append({
            "model": name, "method": label, "rtol": rtol, "atol": atol, "max_steps": solver.get_max_steps(),
            "import_s": import_s,
            "states": model.nx_rdata, "conditions": len(result[RDATAS]), "estimated": len(x),
            "llh": result[LLH], "median_s": seconds, "simulations_median_s": core_seconds,
            "status": ";".join(statuses),
            "grad": json.dumps({k: float(v) for k, v in grad.items()}) if grad else "",
        })
        print(f"{name} {label}: llh {result[LLH]:.10g}, {seconds * 1e3:.3g} ms, simulations "
              f"{core_seconds * 1e3:.3g} ms ({';'.join(statuses)})",
              file=sys.stderr)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", type=Path, required=True, help="the Benchmark-Models folder of a clone")
    parser.add_argument("--models", nargs="*", help="model names (default: every model of the collection)")
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--atol", type=float, default=1e-16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-steps", type=int, help="AMICI's step limit per simulation (default: AMICI's, 10000)")
    parser.add_argument("--out", type=Path, default=RESULTS / "petab_amici.csv")
    args = parser.parse_args(argv)
    names = args.models or sorted(p.name for p in args.collection.iterdir() if (p / f"{p.name}.yaml").exists())
    rows = []
    with tempfile.TemporaryDirectory() as build:
        for name in names:
            try:
                rows += run_model(args.collection / name, Path(build), args.rtol, args.atol, args.repeats,
                                  args.max_steps)
            except Exception as error:  # a model AMICI cannot import or simulate is a row, not the end
                rows.append({"model": name, "method": "import", "status": f"{type(error).__name__}: {error}"})
                print(f"{name}: {type(error).__name__}: {error}", file=sys.stderr)
    frame = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(frame.drop(columns=["grad"], errors="ignore").to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
