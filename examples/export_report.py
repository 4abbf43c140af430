"""A resumable sweep exported as a report: CSVs, figures and summary.md.

With ``out_dir`` every finished (solver, sensitivity) batch is appended to
OUT_DIR/gradients.csv at once; run the script again after an interruption and only the
missing batches are computed. `report` then writes gradients.csv, fits.csv, comparison.csv,
the figures and summary.md, and the CSVs read back with pandas unchanged.

    python examples/export_report.py [OUT_DIR]
"""

import sys

import numpy as np
import pandas as pd

import pystiffsens as pss
from pystiffsens.study import fit_decay, read_gradients, report, sweep

out_dir = sys.argv[1] if len(sys.argv) > 1 else "linear_modes_report"
problem = pss.problems.get("linear_modes")  # slow mode a fed by a fast mode lam
stiffness = np.logspace(1, 5, 7)

frame = sweep(problem, stiffness, ["Rodas5P", "ImplicitEuler"], ["forward", "adjoint"], dt=0.05, out_dir=out_dir)

# fit only the stiff end of the grid, where the power law has settled
fits = fit_decay(frame, min_stiffness=1e2)
paths = report(frame, out_dir, fits=fits)
for name, path in paths.items():
    print(f"{name:32s} {path}")

# everything reads back: the gradient frame (with its checkpoint dtypes) and the fits
pd.testing.assert_frame_equal(read_gradients(paths["gradients"]), frame, check_dtype=False)
print(pd.read_csv(paths["fits"])[["solver", "sensitivity", "param", "exponent", "exact_exponent"]].to_string(index=False))
