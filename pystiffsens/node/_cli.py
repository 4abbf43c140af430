"""The ``train-node`` subcommand of the ``pystiffsens`` command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .experiment import DEFAULT_STIFFNESS, DEFAULT_VARIANTS
from .training import TrainConfig


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--stiffness={text!r} must be comma-separated numbers, e.g. 1e1,1e2,1e3.") from None


def register(subparsers) -> None:
    """Add the ``train-node`` subcommand."""
    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train-node",
        help="train a stiff neural ODE at several stiffness levels, baseline against remedies",
        description="Train the neural ODE of pystiffsens.node (known chain A -> B -> C with a trainable fast "
        "rate plus a tanh MLP) on trajectories of the stiff chain at each stiffness, for each variant "
        "(baseline, log-parameterised rate, the loss/output scaling of Kim et al. 2021, both), and write "
        "history.csv, gradients.csv, fits.csv, budget.csv, loss_curves.png, grad_vs_stiffness.png and "
        "summary.md to --out. Checkpoints go to --out/checkpoints; rerunning with the same --out resumes.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--stiffness", default=",".join(f"{s:g}" for s in DEFAULT_STIFFNESS),
                        help="comma-separated fast rates of the data (default: %(default)s)")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help="comma-separated variants (default: %(default)s)")
    parser.add_argument("--solver", default=defaults.solver, help="solver (default: %(default)s)")
    parser.add_argument("--sensitivity", default=defaults.sensitivity, help="sensitivity (default: %(default)s)")
    parser.add_argument("--dt", type=float, default=None, help="fixed step for the fixed-step solvers")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                        help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--trajectories", type=int, default=defaults.n_trajectories,
                        help="training trajectories (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="data and initialisation seed")
    parser.add_argument("--fit-min-stiffness", type=float, default=1e2,
                        help="fit the decay exponents on stiffness >= this (default: %(default)g)")
    parser.set_defaults(func=_train_node)


def _train_node(args) -> int:
    from .experiment import run_experiment
    from .report import write_report

    config = TrainConfig(solver=args.solver, sensitivity=args.sensitivity, dt=args.dt, epochs=args.epochs,
                         learning_rate=args.learning_rate, n_trajectories=args.trajectories, seed=args.seed)
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    start = time.perf_counter()
    history = run_experiment(_floats(args.stiffness), variants, config, checkpoint_dir=args.out / "checkpoints",
                             progress=True)
    print(f"trained {history.groupby(['variant', 'stiffness']).ngroups} runs in {time.perf_counter() - start:.1f} s")
    command = "pystiffsens " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("pystiffsens") else None
    paths = write_report(history, config, args.out, min_stiffness=args.fit_min_stiffness, command=command)
    print(f"wrote {', '.join(str(path) for path in paths.values())}")
    return 0
