"""Import benchmark (issue 12 item 3): how long ``import pystiffsens`` takes, and what it loads.

Run: ``python benchmarks/bench_import.py [--rounds N]`` (after ``pip install -e .``); prints
Markdown on stdout.

Each round starts one new interpreter per statement, in a new random order each round, and
times the statement inside it with ``time.perf_counter`` (so interpreter start-up is left
out; the process's whole wall time is given beside it). The statements are
``import pystiffsens``, ``import jax`` and ``import ml_dtypes`` after ``import numpy``,
because jax's own import bounds pystiffsens's and ml_dtypes 0.7.0 alone took most of it.
Target: ``import pystiffsens`` under 1.5 s. The table also lists which of the heavy layers
(pandas, statsmodels, optax, matplotlib.pyplot, diffrax) the import pulled in: none should be.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

HEAVY = ("pandas", "statsmodels", "optax", "matplotlib.pyplot", "diffrax")
STATEMENTS = {
    "import pystiffsens": ("", "import pystiffsens"),
    "import jax": ("", "import jax"),
    "import ml_dtypes (numpy already imported)": ("import numpy", "import ml_dtypes"),
}
PROBE = """
import json, sys, time
{setup}
t = time.perf_counter()
{statement}
t = time.perf_counter() - t
print(json.dumps({{"import_s": t, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def one_run(setup: str, statement: str) -> dict:
    code = PROBE.format(setup=setup, statement=statement, heavy=HEAVY)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args(argv)
    print("\n".join(C.machine_info()))
    print(f"- ml_dtypes {C._version('ml_dtypes')}, {args.rounds} rounds\n")
    runs: dict[str, list[dict]] = {name: [] for name in STATEMENTS}
    rng = random.Random(0)
    for _ in range(args.rounds):
        order = list(STATEMENTS)
        rng.shuffle(order)
        for name in order:
            runs[name].append(one_run(*STATEMENTS[name]))
    rows, medians = [], {}
    for name, results in runs.items():
        imports = [r["import_s"] for r in results]
        procs = [r["process_s"] for r in results]
        heavy = sorted({m for r in results for m in r["heavy"]})
        medians[name] = C.median(imports)
        rows.append([
            f"`{name}`", C.fmt(medians[name]), C.fmt(min(imports)), C.fmt(max(imports)),
            C.fmt(C.median(procs)), ", ".join(heavy) if heavy else "none",
        ])
    print(C.markdown_table(
        ["statement", "median s", "min s", "max s", "process median s", "heavy layers loaded"], rows))
    median_pss = medians["import pystiffsens"]
    print(f"\n`import pystiffsens` median {median_pss:.3f} s: target 1.5 s "
          f"{'met' if median_pss < 1.5 else 'not met'}.")


if __name__ == "__main__":
    main()
