"""The baseline and the remedies for the vanishing fast-rate gradient.

A *variant* fixes two independent choices:

* ``log_rates``: train ``log lam`` instead of ``lam``. The gradient
  becomes ``dL/dlog lam = lam dL/dlam``, one power of ``lam`` larger, and an optimiser step
  changes the rate by a relative rather than an absolute amount (a common remedy for rate
  constants spanning orders of magnitude).
* ``scaled``: the scaling of Kim, Ji, Deng, Ma & Rackauckas, "Stiff neural ordinary
  differential equations", Chaos 31, 093122 (2021): each state's squared error in the loss
  is divided by the square of its range in the data, and the network's output for each
  state is multiplied by that range over the time horizon, so that every state, and the
  network's contribution to it, is of order one however small the fast intermediate is.
  Here the fast intermediate's range is ``~ k/lam``, so the loss weight of its error grows
  like ``lam^2`` while the error itself shrinks like ``1/lam``.

:data:`VARIANTS` holds the baseline, each remedy alone and both together.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from .._validation import choose
from .model import RATES


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of parameterising the rates (``log_rates``) and scaling loss and output (``scaled``)."""

    name: str
    log_rates: bool
    scaled: bool

    def to_raw(self, model: dict) -> dict:
        """The trained parameters from the model's (``log_lam`` for ``lam`` when ``log_rates``)."""
        if not self.log_rates:
            return dict(model)
        raw = {name: value for name, value in model.items() if name not in RATES}
        raw.update({f"log_{name}": jnp.log(model[name]) for name in RATES})
        return raw

    def to_model(self, raw: dict) -> dict:
        """The model's parameters from the trained ones (JAX-differentiable)."""
        if not self.log_rates:
            return dict(raw)
        model = {name: value for name, value in raw.items() if not name.startswith("log_")}
        model.update({name: jnp.exp(raw[f"log_{name}"]) for name in RATES})
        return model

    def data_entries(self, state_range, t_end: float) -> dict:
        """``weight`` and ``out_scale`` of :mod:`pystiffsens.node.model` for a data set."""
        state_range = np.asarray(state_range, dtype=np.float64)
        if not self.scaled:
            return {"weight": np.ones_like(state_range), "out_scale": np.ones_like(state_range)}
        return {"weight": 1.0 / state_range**2, "out_scale": state_range / t_end}


VARIANTS = {
    "baseline": Variant("baseline", log_rates=False, scaled=False),
    "log_rates": Variant("log_rates", log_rates=True, scaled=False),
    "kim_scaling": Variant("kim_scaling", log_rates=False, scaled=True),
    "kim_scaling_log_rates": Variant("kim_scaling_log_rates", log_rates=True, scaled=True),
}


def get(name: str) -> Variant:
    """The variant called ``name`` (one of :data:`VARIANTS`)."""
    return VARIANTS[choose("variant", name, VARIANTS)]
