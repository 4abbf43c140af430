"""Solvers and sensitivity methods side by side on the Prothero–Robinson problem.

y' = -lam (y - sin(omega t)) + omega cos(omega t): the gradient with respect to the fast
rate lam decays with stiffness, the one with respect to the slow frequency omega must not.
`compare` lists, for every solver and sensitivity, the steepest fitted exponent, the median
cost and the failures; `fit_decay` has the exponent of every parameter.

    python examples/compare_solvers.py
"""

import numpy as np

import pystiffsens as pss
from pystiffsens.study import compare, fit_decay, sweep

problem = pss.problems.get("prothero_robinson")
stiffness = np.logspace(1, 5, 7)

frame = sweep(problem, stiffness, ["Rodas5P", "KenCarp4", "FBDF"], ["forward", "adjoint"], rtol=1e-6, atol=1e-8)
fits = fit_decay(frame)

table = compare(frame, fits)
print(table[["solver", "sensitivity", "exponent", "exponent_param", "median_wall_time_s", "median_n_steps", "n_failures"]]
      .to_string(index=False))

# omega's gradient should not vanish: its exponent stays near the exact one (about 0)
omega = fits[fits["param"] == "omega"]
print(omega[["solver", "sensitivity", "exponent", "exact_exponent"]].to_string(index=False))

# the same numbers as a solvers x sensitivities grid
print(table.pivot(index="solver", columns="sensitivity", values="exponent"))
