"""Training a stiff neural ODE (pystiffsens.node): the fast-rate gradient vanishes with
stiffness at the solver's theory rate, the remedy restores it, and training resumes from
checkpoints exactly."""

import numpy as np
import pandas as pd
import pytest

import pystiffsens as pss
from pystiffsens import node
from pystiffsens.cli import main
from pystiffsens.node import remedies
from pystiffsens.node.experiment import gradient_frame

STIFFNESS = (1e2, 1e3, 1e4)
CONFIG = node.TrainConfig.short(epochs=3)


@pytest.fixture(scope="module")
def history():
    return node.run_experiment(STIFFNESS, ["baseline", "kim_scaling_log_rates"], CONFIG)


def _epoch0(history, variant):
    rows = history[(history["variant"] == variant) & (history["epoch"] == 0)].sort_values("stiffness")
    return rows["grad_norm_fast"].to_numpy()


def test_history_is_tidy_and_successful(history):
    assert list(history.columns) == list(node.HISTORY_COLUMNS)
    assert len(history) == 2 * len(STIFFNESS) * CONFIG.epochs
    assert (history["status"] == "Success").all()
    assert (history["n_steps"] > 0).all() and (history["backward_n_steps"] == -1).all()
    assert np.isfinite(history[["loss", "grad_norm_fast", "grad_norm_rest"]].to_numpy()).all()


def test_fast_gradient_vanishes_with_stiffness_at_the_theory_rate(history):
    baseline = _epoch0(history, "baseline")
    assert np.all(np.diff(baseline) < 0)
    fits = node.fit_gradients(gradient_frame(history, CONFIG))
    fast = fits[(fits["variant"] == "baseline") & (fits["param"] == "fast")].iloc[0]
    assert fast["theory_exponent"] == pss.theory.decay_exponent(CONFIG.solver) == -2
    assert abs(fast["exponent"] - fast["theory_exponent"]) < 0.2


def test_remedy_restores_the_fast_gradient(history):
    baseline, remedy = _epoch0(history, "baseline"), _epoch0(history, "kim_scaling_log_rates")
    assert np.all(remedy > 10 * baseline)
    fits = node.fit_gradients(gradient_frame(history, CONFIG)).set_index(["variant", "param"])
    assert fits.loc[("kim_scaling_log_rates", "fast"), "exponent"] > fits.loc[("baseline", "fast"), "exponent"] + 1.5


def test_resume_from_checkpoint_equals_an_uninterrupted_run(tmp_path):
    dataset = node.make_dataset(1e3, **CONFIG.data_kwargs())
    variant = remedies.get("log_rates")
    whole = node.train(variant, dataset, node.TrainConfig.short(epochs=4)).history
    path = tmp_path / "run.pkl"
    first = node.train(variant, dataset, node.TrainConfig.short(epochs=2), checkpoint_path=path).history
    assert len(first) == 2
    resumed = node.train(variant, dataset, node.TrainConfig.short(epochs=4), checkpoint_path=path).history
    columns = [c for c in node.HISTORY_COLUMNS if c != "wall_time_s"]
    assert resumed[columns].equals(whole[columns])
    with pytest.raises(ValueError, match="another run"):
        node.train(remedies.get("baseline"), dataset, node.TrainConfig.short(epochs=4), checkpoint_path=path)


def test_bad_variant_names_the_choices():
    with pytest.raises(ValueError, match="kim_scaling"):
        remedies.get("kim")


def test_cli_writes_the_report(tmp_path):
    out = tmp_path / "report"
    code = main(["train-node", "--out", str(out), "--stiffness", "1e2,1e3,1e4", "--epochs", "2",
                 "--trajectories", "4", "--variants", "baseline,log_rates"])
    assert code == 0
    for name in node.report.FILES:
        assert (out / name).exists(), name
    fits = pd.read_csv(out / "fits.csv")
    exponent = fits[(fits["variant"] == "log_rates") & (fits["param"] == "fast")]["exponent"].iloc[0]
    assert f"{exponent:.3f}" in (out / "summary.md").read_text()


def test_summary_names_an_exponential_methods_theory_in_words(history):
    """An exponential integrator's theory exponent is -inf; the summary says what that means."""
    from pystiffsens.node.experiment import budget_table
    from pystiffsens.node.report import _summary
    from pystiffsens.theory.asymptotics import FASTER_THAN_ANY_POWER

    fits = node.fit_gradients(gradient_frame(history, CONFIG)).assign(theory_exponent=-np.inf)
    text = _summary(history, fits, budget_table(history), CONFIG, None)
    assert FASTER_THAN_ANY_POWER in text and "-inf" not in text
