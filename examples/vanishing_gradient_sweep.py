"""The vanishing gradient in one sweep: |dL/dlam| against the stiffness lam.

One implicit-Euler step on Dahlquist's y' = -lam*y gives y1 = R(-lam) = 1/(1 + lam), so the
gradient is -R'(-lam) and decays like |R'(z)| ~ |z|^-2 (the trapezoidal rule too). The
adaptive Rodas5P takes many steps and its gradient vanishes much faster, as the true
gradient -exp(-lam) does (faster than any power). The fit puts a number on each decay,
next to the stability-function theory; in our run: about -1.99, -1.98 and -5.9.

    python examples/vanishing_gradient_sweep.py [OUT_DIR]
"""

import sys

import numpy as np
import pandas as pd

import pystiffsens as pss
from pystiffsens.study import fit_decay, report, sweep

out_dir = sys.argv[1] if len(sys.argv) > 1 else "vanishing_gradient_report"
problem = pss.problems.get("dahlquist")  # stiffness knob: lam
stiffness = np.logspace(1, 6, 11)

single_step = sweep(problem, stiffness, ["ImplicitEuler", "Trapezoid"], "forward", dt=1.0)
adaptive = sweep(problem, stiffness, "Rodas5P", "forward", rtol=1e-8, atol=1e-10)
frame = pd.concat([single_step, adaptive], ignore_index=True)

fits = fit_decay(frame)
columns = ["solver", "dt", "param", "exponent", "exponent_se", "theory_exponent", "n_points", "n_zero"]
print(fits[columns].to_string(index=False))
paths = report(frame, out_dir, fits=fits)
print(f"Report: {paths['summary']}")
