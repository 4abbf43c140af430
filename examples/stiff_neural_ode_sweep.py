"""How a stiff fast mode starves the gradient of a neural ODE's weights.

y' = -diag(lam_slow, lam_fast) y + MLP(y): as lam_fast grows, the sweep records the
gradient of the loss with respect to every MLP weight and bias. `fit_decay` gives each
entry's decay exponent. In our run the steepest were lam_fast (about -2) and the weights
that act through the fast component, W1[:, 1] (reading y2), W2[1, :] and b2[1] (writing
y2'), at about -1; the others hardly decay.

    python examples/stiff_neural_ode_sweep.py [OUT_DIR]
"""

import sys

import numpy as np

import pystiffsens as pss
from pystiffsens.study import fit_decay, report, sweep

out_dir = sys.argv[1] if len(sys.argv) > 1 else "stiff_neural_ode_report"
problem = pss.problems.get("stiff_neural_ode", hidden=4)
stiffness = np.logspace(1, 5, 6)

frame = sweep(problem, stiffness, "Rodas5P", ["forward", "adjoint"], rtol=1e-6, atol=1e-8, out_dir=out_dir)
fits = fit_decay(frame)

columns = ["sensitivity", "param", "exponent", "exponent_se", "r2"]
print("Steepest decays:")
print(fits.sort_values("exponent").groupby("sensitivity").head(5)[columns].to_string(index=False))
print("Slowest decays:")
print(fits.sort_values("exponent").groupby("sensitivity").tail(3)[columns].to_string(index=False))
print(f"Report: {report(frame, out_dir, fits=fits)['summary']}")
