"""The growth-exponent fit of the scaling benchmark (benchmarks/_common.py); no timing here."""

import importlib.util
import math
import pathlib

import numpy as np

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "_common.py"
_spec = importlib.util.spec_from_file_location("bench_common", _PATH)
bench_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_common)


def test_loglog_slope_recovers_a_power_law():
    sizes = np.array([3, 10, 30, 100, 300, 1000])
    assert math.isclose(bench_common.loglog_slope(sizes, 2e-3 * sizes**1.7), 1.7, rel_tol=1e-12)
    noisy = 5.0 * sizes**0.5 * np.exp(np.array([0.01, -0.02, 0.015, -0.01, 0.02, -0.015]))
    assert abs(bench_common.loglog_slope(sizes, noisy) - 0.5) < 0.02


def test_loglog_slope_leaves_out_missing_times():
    sizes = [1, 4, 16, 64]
    times = [2.0, 8.0, float("nan"), 128.0]  # a skipped size: slope from the other three
    assert math.isclose(bench_common.loglog_slope(sizes, times), 1.0, rel_tol=1e-12)
    assert math.isnan(bench_common.loglog_slope([1, 4], [1.0, float("nan")]))
