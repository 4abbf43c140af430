"""Right-hand sides that jump at a known time: the stops of pystiffsens.sbml.switches, and the steps onto them."""

import jax.numpy as jnp
import numpy as np
import pytest

import pystiffsens as pss
from pystiffsens.sbml import switches

JUMP = 1e8  # the inflow after the switch: a step across it, or a step of one ulp onto it, fails the error test
T_ON = 1.3
TIGHT = dict(rtol=1e-10, atol=1e-12)


def test_stops_step_around_each_switch_once_and_keep_the_saved_times():
    saveat = np.array([0.0, 1.0, 2.0, 3.0])
    # 1.5 inside; 2.0 a saved time already; 0.0 the start; 5.0 after the end; NaN none; 1.5 again.
    times = np.array([1.5, 2.0, 0.0, 5.0, np.nan, 1.5])
    every, positions = (np.asarray(a) for a in switches.stops(saveat, times, 0.0, 3.0))
    assert every.shape == (saveat.size + 3 * times.size,)
    assert np.all(np.diff(every) >= 0)
    np.testing.assert_array_equal(every[positions], saveat)
    inside = every[every > 0.0]
    expected = [np.nextafter(1.5, 0.0), 1.5, np.nextafter(1.5, 2.0), 1.0, np.nextafter(2.0, 0.0), 2.0,
                np.nextafter(2.0, 3.0), 3.0]
    np.testing.assert_array_equal(inside, np.sort(expected))  # everything else waits at the start


def _inflow(strict: bool):
    """``y' = JUMP`` from ``T_ON`` on (at ``T_ON`` itself too if ``strict``, else only after it), 0 before."""

    def rhs(t, y, p):
        off = t - p["t_on"] < 0 if strict else t - p["t_on"] <= 0
        return jnp.where(off, 0.0, p["jump"]) * jnp.ones_like(y)

    return pss.Problem(rhs, np.array([1.0]), (0.0, 2.0), {"t_on": T_ON, "jump": JUMP}, saveat=[1.0, 2.0],
                       name="inflow")


def _switch_stops(problem):
    every = np.asarray(switches.stops(problem.saveat, [problem.params["t_on"]], *problem.tspan)[0])
    return np.unique(every[every > problem.tspan[0]])


@pytest.mark.parametrize("solver, strict", [("Rodas5P", True), ("Rodas5P", False), ("FBDF", True),
                                            ("KenCarp4", True)])
def test_a_solve_steps_over_a_switch_in_time_at_tight_tolerances(solver, strict):
    """Stops next to the switch carry the solve over it: the steps between them are a unit in the last place long,
    and each stays on one side of the switch (pystiffsens.integrate's adjacent stops)."""
    problem = _inflow(strict)
    stops = _switch_stops(problem)
    sol = pss.solve(problem, solver, saveat=stops, **TIGHT)
    assert sol.status == pss.ReturnCode.Success, sol.status
    exact = 1.0 + JUMP * np.maximum(stops - T_ON, 0.0)
    # Next to the switch the state is off by the jump times the gap between floats there, which time cannot resolve.
    np.testing.assert_allclose(sol.ys[:, 0], exact, rtol=1e-10, atol=JUMP * 4 * np.finfo(float).eps * T_ON)
