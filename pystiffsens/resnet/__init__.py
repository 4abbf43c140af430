"""ResNets as explicit-Euler neural ODEs: stiffness proxies, stiffness-penalised training and
the layer gradients of the trained networks against stiffness.

:mod:`.model` (the network and its layer Jacobians), :mod:`.alpine` (the Alpine02 task),
:mod:`.training` (RES, RES L2, RES stiff), :mod:`.report` (CSV, plots, summary beside the
deck's numbers), :mod:`.neural_ode` (per-layer gradients of the ResNet and of its neural ODE
under implicit solvers, as a frame for ``fit_decay``).

After J. Hudson, K. Sargsyan, M. D'Elia, H. Najm, *Examining stiffness in ResNets through
interpretation as discretized Neural ODEs*, Sandia LDRD 21-0528 slides, 2022. Their climate
case (E3SM land-model data) is not public and is not reproduced.
"""

from .alpine import alpine02, make_data
from .model import LAYER_PROXIES, init_params, layer_jacobians, layer_proxies, predict
from .neural_ode import layer_gradient_frame, neural_ode_problem, resnet_loss_and_grad
from .report import DECK_ALPINE02, write_report
from .training import MODELS, TrainConfig, TrainResult, dataset, experiment, train

__all__ = [
    "DECK_ALPINE02",
    "LAYER_PROXIES",
    "MODELS",
    "TrainConfig",
    "TrainResult",
    "alpine02",
    "dataset",
    "experiment",
    "init_params",
    "layer_gradient_frame",
    "layer_jacobians",
    "layer_proxies",
    "make_data",
    "neural_ode_problem",
    "predict",
    "resnet_loss_and_grad",
    "train",
    "write_report",
]
