"""Training a stiff neural ODE with pystiffsens's own implicit solvers and sensitivities.

Fronk & Petzold (arXiv:2508.01519, 2025) show that A-/L-stable integrators make the
gradient of a fast mode's parameter vanish with stiffness. This subpackage trains a neural
ODE on a stiff system and measures it:

:mod:`.system` (the stiff chain and its trajectories), :mod:`.model` (known linear part with
a trainable fast rate plus an MLP, batched over trajectories), :mod:`.remedies` (baseline,
log-parameterised rate, the scaling of Kim et al., Chaos 31, 093122, 2021), :mod:`.training`
(optax training with a per-epoch history and checkpoints), :mod:`.checkpoint`,
:mod:`.experiment` (stiffness levels x variants, the frame for ``fit_decay``, the budget
table), :mod:`.report` (CSVs, plots, ``summary.md``); ``pystiffsens train-node``.

optax, pandas and matplotlib are imported only when used.
"""

from .experiment import budget_table, fit_gradients, gradient_frame, run_experiment
from .remedies import VARIANTS, Variant
from .report import write_report
from .system import Dataset, make_dataset, true_rhs
from .training import HISTORY_COLUMNS, TrainConfig, TrainResult, train

__all__ = [
    "HISTORY_COLUMNS",
    "VARIANTS",
    "Dataset",
    "TrainConfig",
    "TrainResult",
    "Variant",
    "budget_table",
    "fit_gradients",
    "gradient_frame",
    "make_dataset",
    "run_experiment",
    "train",
    "true_rhs",
    "write_report",
]
