"""The operation tally of benchmarks/profile_petab.py, on a profile of a small program; no timing here."""

import pathlib
import sys

import jax
import jax.numpy as jnp
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
pytest.importorskip("petab")
import profile_petab  # noqa: E402  (an import error in the script fails here, not a skip)


def test_operation_times_counts_each_operation_once_with_its_own_time(tmp_path):
    matrix = jnp.eye(6) * 4.0 + jnp.arange(36.0).reshape(6, 6) / 36.0
    stack = jnp.stack([matrix, 2.0 * matrix, 3.0 * matrix])

    @jax.jit
    def program(a, b):
        def body(i, x):  # a matrix that changes each iteration: one batched LU and two triangular solves each
            return jnp.linalg.solve(a * (1.0 + i), x[..., None])[..., 0]
        return jax.lax.fori_loop(0, 5, body, b)

    b = jnp.ones((3, 6))
    program(stack, b).block_until_ready()  # compiled outside the profile
    with jax.profiler.trace(str(tmp_path)):
        program(stack, b).block_until_ready()
    operations = profile_petab.operation_times(str(tmp_path))
    assert operations["lu"][0] == 5
    assert operations["triangular_solve"][0] == 10
    assert operations["while"][0] >= 1
    # Runtime markers and Python frames are not operations; own times exclude nested operations, so none is negative.
    assert all(profile_petab._OPERATION.fullmatch(name) for name in operations)
    assert not any(":" in name or "(" in name or name.startswith("$") for name in operations)
    assert all(seconds >= 0 for _, seconds in operations.values())
