"""Plots of ``|R(z)|`` and ``|R'(z)|`` against ``|z|`` with the ``|z|^-1`` bound."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from .asymptotics import format_exponent
from .checks import a_alpha_angle, is_a_stable
from .methods import stability_function


def plot_stability(methods, zmin: float = 1e-2, zmax: float = 1e6, angle_deg: float = 0.0,
                   n_points: int = 300) -> Figure:
    """Log–log plots of ``|R(z)|`` (left) and ``|R'(z)|`` (right) on ``z = -r e^(i angle)``.

    ``methods`` are names, tableaux or theory objects; for BDF ``R`` is the principal root.
    The right panel draws ``C |z|^-1``, the slowest rate of decay any A-stable method can
    have (Fronk & Petzold, arXiv:2508.01519, 2025), through the largest ``|R'|`` at
    ``|z| = zmax``: the curve of an A-stable method decays at least as fast, so approaching
    its slope means approaching the bound. The bound holds for A-stable methods only: a method
    that is not (BDF3-5 are A(alpha)-stable, with alpha below 90 degrees) is labelled with its
    angle, and the line's label names it as outside the bound. Returns a
    :class:`matplotlib.figure.Figure` (no pyplot state; save it with ``fig.savefig``).
    """
    if not (0.0 < zmin < zmax and math.isfinite(zmax)):
        raise ValueError(f"zmin={zmin!r}, zmax={zmax!r} must satisfy 0 < zmin < zmax < inf.")
    theories = [stability_function(m) for m in methods]
    if not theories:
        raise ValueError("methods is empty; pass at least one method name, tableau or theory object.")
    r = np.geomspace(zmin, zmax, n_points)
    z = -r * np.exp(1j * math.radians(angle_deg))
    fig = Figure(figsize=(14, 4.8), layout="constrained")
    ax_r, ax_d = fig.subplots(1, 2)
    end = 0.0
    not_a_stable = []
    power_law_ranges = []  # smallest and largest |R|, |R'| of the curves that decay like a power of |z|
    for theory in theories:
        dr = np.abs(theory.dR(z))
        end = max(end, dr[-1])
        if np.isfinite(theory.decay_exponent):
            r_values = np.abs(theory.R(z))
            power_law_ranges.append([_smallest_positive(r_values), _smallest_positive(dr), r_values.max(), dr.max()])
        stability = ""
        if not is_a_stable(theory):
            not_a_stable.append(theory.name)
            stability = f"; A({a_alpha_angle(theory):.0f}°)-stable only"
        ax_r.loglog(r, np.abs(theory.R(z)), label=f"{theory.name}")
        decay = format_exponent(theory.decay_exponent)
        decay = f"exponent {decay}" if np.isfinite(theory.decay_exponent) else decay
        ax_d.loglog(r, dr, label=f"{theory.name} ({decay}{stability})")
    if end > 0.0:  # zero when every |R'| has underflowed at zmax (R = e^z): no curve to anchor the bound to
        ax_d.loglog(r, end * zmax / r, "k--", label=_bound_label(not_a_stable))
    if power_law_ranges and len(power_law_ranges) < len(theories):
        # A curve that decays faster than any power (R = e^z) leaves the panels downwards.
        low, high = np.min(power_law_ranges, axis=0)[:2], np.max(power_law_ranges, axis=0)[2:]
        for ax, bottom, top in zip((ax_r, ax_d), low, high):
            if np.isfinite(bottom) and top > 0.0:
                ax.set_ylim(0.1 * bottom, 10.0 * top)
    where = "negative real axis" if angle_deg == 0 else f"arg(-z) = {angle_deg:g} deg"
    ax_r.set(xlabel="|z|", ylabel="|R(z)|", title=f"Stability function on the {where}")
    ax_d.set(xlabel="|z|", ylabel="|R'(z)|", title="Its derivative: the per-step sensitivity")
    for ax in (ax_r, ax_d):
        ax.grid(True, which="major", alpha=0.3)
    ax_r.legend(fontsize="small")
    ax_d.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside: the curves fill the panel
    return fig


def _smallest_positive(values: np.ndarray) -> float:
    positive = values[values > 0.0]
    return float(positive.min()) if positive.size else np.inf


def _bound_label(not_a_stable: list[str]) -> str:
    """Legend label of the ``|z|^-1`` line: the slowest decay of A-stable methods, naming the
    plotted methods it does not bound."""
    label = r"$\propto|z|^{-1}$: slowest decay of an A-stable method"
    if not_a_stable:
        label += f"\n(not a bound for {', '.join(not_a_stable)}: not A-stable)"
    return label
