"""One tidy row of stability facts per method."""

from __future__ import annotations

import pandas as pd

from .asymptotics import numerical_decay_exponent
from .checks import a_alpha_angle, is_a_stable, is_l_stable
from .methods import stability_function


def summary(methods) -> pd.DataFrame:
    """Exponents and stability properties of ``methods`` (names, tableaux or theory objects).

    Columns: ``method``, ``family``, ``decay_exponent`` (exact), ``numerical_exponent``
    (log–log slope of ``|R'|`` on the negative real axis for ``|z|`` in ``[1e8, 1e10]``),
    ``r_at_infinity`` (``|R(inf)|``), ``a_stable``, ``l_stable``, ``a_alpha_deg``. Both exponents
    are ``-inf`` for the exponential integrators (``R(z) = e^z``); print them with
    :func:`~pystiffsens.theory.format_exponent`.
    """
    rows = []
    for method in methods:
        theory = stability_function(method)
        rows.append({
            "method": theory.name,
            "family": theory.family,
            "decay_exponent": theory.decay_exponent,
            "numerical_exponent": numerical_decay_exponent(theory),
            "r_at_infinity": theory.limit_at_infinity,
            "a_stable": is_a_stable(theory),
            "l_stable": is_l_stable(theory),
            "a_alpha_deg": a_alpha_angle(theory),
        })
    return pd.DataFrame(rows)
