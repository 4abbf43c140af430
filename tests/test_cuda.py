"""The CUDA path: the same solves and gradients on a GPU as on the CPU.

Runs only where JAX sees a CUDA device; elsewhere it skips with the reason (the CPU path
of the same code is covered by every other test, and tests/test_engine.py checks the
error raised when CUDA is asked for and absent).
"""

import jax
import numpy as np
import pytest

import pystiffsens as pss


def _has_cuda() -> bool:
    try:
        return len(jax.devices("cuda")) > 0
    except RuntimeError:
        return False


pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not _has_cuda(), reason="no CUDA device visible to JAX (install pystiffsens[cuda] on a GPU machine)"),
]


@pytest.mark.parametrize("solver", ["Rodas5P", "KenCarp4", "FBDF"])
def test_solve_on_cuda_matches_cpu(solver):
    problem = pss.problems.get("robertson")
    cpu = pss.solve(problem, solver, device="cpu")
    gpu = pss.solve(problem, solver, device="cuda")
    assert gpu.status == cpu.status == pss.ReturnCode.Success
    np.testing.assert_allclose(gpu.ys, cpu.ys, rtol=1e-9)


@pytest.mark.parametrize("sensitivity", ["ForwardDiffSensitivity", "ReverseDiffAdjoint", "InterpolatingAdjoint"])
def test_gradient_on_cuda_matches_cpu(sensitivity):
    problem = pss.problems.get("robertson", t_end=40.0)
    cpu = pss.gradient(problem, "Rodas5P", sensitivity, device="cpu")
    gpu = pss.gradient(problem, "Rodas5P", sensitivity, device="cuda")
    assert gpu.status == pss.ReturnCode.Success
    for key in cpu.grad:
        np.testing.assert_allclose(gpu.grad[key], cpu.grad[key], rtol=1e-7)


def test_sweep_on_cuda():
    frame = pss.sweep("dahlquist", [1e2, 1e4], "ImplicitEuler", "forward", dt=1.0, device="cuda", progress=False)
    assert (frame["status"] == "Success").all() and (frame["device"] == "cuda").all()
