"""ResNet as explicit-Euler neural ODE: model, penalised training, report, CLI and layer gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from pystiffsens import cli
from pystiffsens.resnet import (
    DECK_ALPINE02,
    TrainConfig,
    alpine02,
    init_params,
    layer_gradient_frame,
    layer_jacobians,
    layer_proxies,
    make_data,
    neural_ode_problem,
    predict,
    resnet_loss_and_grad,
    train,
    write_report,
)
from pystiffsens.resnet.model import hidden_states
from pystiffsens.resnet.neural_ode import FRAME_COLUMNS, layer_params
from pystiffsens.study import fit_decay

STRONG_PENALTY = 0.1  # a 40-epoch run moves the proxy visibly only with a larger lambda than the deck's 1e-3


@pytest.fixture(scope="module")
def short_runs():
    config = TrainConfig.short()
    return {
        "RES": train("RES", config),
        "RES_stiff": train("RES stiff", config, penalty_weight=STRONG_PENALTY),
    }


@pytest.fixture(scope="module")
def small_net():
    params = init_params(jax.random.PRNGKey(3), dim=2, width=3, depth=2)
    u, y, _, _ = make_data(jax.random.PRNGKey(4), dim=2, n_train=2, n_test=1)
    return params, u, y


def test_alpine02_values():
    assert alpine02(jnp.array([np.pi / 2, -np.pi / 2])) == pytest.approx(-np.pi / 2, rel=1e-12)
    assert alpine02(jnp.array([0.0, 3.0])) == 0.0
    u, y, u_test, y_test = make_data(jax.random.PRNGKey(0), dim=3, n_train=10, n_test=5)
    assert u.shape == (10, 3) and y.shape == (10, 1) and u_test.shape == (5, 3) and y_test.shape == (5, 1)
    assert np.all(np.abs(u) <= 5.0)
    np.testing.assert_allclose(y[:, 0], alpine02(u))


def test_resnet_is_explicit_euler_and_its_jacobians_are_the_layer_derivatives():
    params = init_params(jax.random.PRNGKey(0), dim=2, width=4, depth=3)
    u = jnp.array([0.3, -1.2])
    xs = hidden_states(params, u, horizon=2.0)
    for n in range(3):
        F = jnp.tanh(params["W"][n] @ xs[n] + params["b"][n])
        np.testing.assert_allclose(xs[n + 1], xs[n] + (2.0 / 3) * F, rtol=1e-14)
    J = layer_jacobians(params, u, horizon=2.0)
    for n in range(3):
        expected = jax.jacfwd(lambda x: jnp.tanh(params["W"][n] @ x + params["b"][n]))(xs[n])
        np.testing.assert_allclose(J[n], expected, rtol=1e-12)
    out = predict(params, jnp.stack([u, u]), horizon=2.0)
    np.testing.assert_allclose(out[0], params["W_out"] @ xs[-1] + params["b_out"], rtol=1e-14)
    proxies = layer_proxies(params, jnp.stack([u, u]), horizon=2.0)
    assert proxies["stiffness_ratio"].shape == (2, 3)


def test_short_training_lowers_the_loss(short_runs):
    for result in short_runs.values():
        history = result.history
        assert history["epoch"].iloc[-1] == result.config.epochs
        assert history["loss"].iloc[-1] < 0.9 * history["loss"].iloc[0]
        assert history["er"].iloc[-1] < history["er"].iloc[0]


def test_stiffness_penalty_lowers_the_gelfand_proxy(short_runs):
    plain = short_runs["RES"].final["spectral_radius_gelfand"]
    penalised = short_runs["RES_stiff"].final["spectral_radius_gelfand"]
    start = short_runs["RES"].history["spectral_radius_gelfand"].iloc[0]
    assert short_runs["RES_stiff"].history["spectral_radius_gelfand"].iloc[0] == start  # same initial network
    assert penalised < 0.8 * plain


def test_report_writes_csv_plots_and_deck_numbers(short_runs, tmp_path):
    paths = write_report(short_runs.values(), tmp_path)
    summary = pd.read_csv(paths["summary"])
    assert list(summary["model"]) == ["RES", "RES_stiff"]
    history = pd.read_csv(paths["history"])
    assert set(history["model"]) == {"RES", "RES_stiff"}
    assert paths["errors"].stat().st_size > 0 and paths["proxies"].stat().st_size > 0
    text = paths["markdown"].read_text()
    assert str(DECK_ALPINE02["er"]) in text and str(DECK_ALPINE02["ge"]) in text
    assert "E3SM" in text


def test_bad_choices_name_the_valid_ones():
    with pytest.raises(ValueError, match="RES, RES_L2, RES_stiff"):
        train("RES_L3", TrainConfig.short())
    with pytest.raises(ValueError, match="multiple of batch_size"):
        TrainConfig(n_train=100, batch_size=45)
    with pytest.raises(ValueError, match="stiffness_ratio"):
        layer_proxies(init_params(jax.random.PRNGKey(0), 2, 3, 2), jnp.zeros((1, 2)), names=("stiff",))


def test_neural_ode_euler_step_is_the_resnet(small_net):
    params, u, y = small_net
    problem = neural_ode_problem(params, u, y, horizon=1.0)
    p = problem.set_stiffness(problem.params, 3.0)
    value, grads = resnet_loss_and_grad(params, u, y, time_scale=3.0)

    def euler_loss(layers):  # explicit Euler with dt = T/N = 0.5 on the problem's rhs
        q = {**p, **layers}
        x = jnp.asarray(problem.y0)
        for n in range(2):
            x = x + 0.5 * problem.rhs(0.5 * n, x, q)
        return problem.loss_fn(None, x[None], q)

    euler_value, euler_grads = jax.value_and_grad(euler_loss)(layer_params(params))
    assert value == pytest.approx(float(euler_value), rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads[name], euler_grads[name], rtol=1e-10)


def test_layer_gradient_frame_feeds_fit_decay(small_net):
    params, u, y = small_net
    frame = layer_gradient_frame(
        {"net": params}, u, y, stiffness=[0.01, 0.02, 0.04], solvers=("Rodas5P",), rtol=1e-9, atol=1e-11
    )
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert set(frame["solver"]) == {"ResNet", "Rodas5P"}
    assert set(frame["param"]) == {"layer_1", "layer_2"}
    assert (frame["status"] == "Success").all()
    # For a small time scale explicit Euler is accurate: the network and the ODE agree.
    pivot = frame.pivot_table(index=["stiffness", "param"], columns="solver", values="grad")
    np.testing.assert_allclose(pivot["ResNet"], pivot["Rodas5P"], rtol=0.05)
    fits = fit_decay(frame)
    assert len(fits) == 4  # (ResNet, Rodas5P) x 2 layers
    # The layer gradient grows like the time scale s for small s.
    np.testing.assert_allclose(fits["exponent"], 1.0, atol=0.05)


def test_train_resnet_cli_with_l2_penalty_from_zero_biases(tmp_path):
    code = cli.main([
        "train-resnet", "--epochs", "2", "--out", str(tmp_path), "--models", "RES L2",
        "--width", "3", "--depth", "2", "--record-every", "1",
    ])
    assert code == 0
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2]
    assert np.all(np.isfinite(history[["loss", "penalty"]].to_numpy()))  # |b| = 0 at start: no NaN
    assert (history["penalty"] > 0).all()
    assert cli.main(["train-resnet", "--epochs", "1", "--out", str(tmp_path), "--models", "RES_X"]) == 2
