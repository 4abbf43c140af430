"""The ``train-resnet`` subcommand of the ``pystiffsens`` command line."""

from __future__ import annotations

import time
from pathlib import Path

from .training import MODELS, TrainConfig, resolve_model


def register(subparsers) -> None:
    """Add the ``train-resnet`` subcommand."""
    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train-resnet",
        help="train RES / RES L2 / RES stiff on Alpine02 and report stiffness proxies",
        description="Train the Alpine02 ResNets of the Hudson et al. deck (width 20, depth 10, tanh, "
        "900/100 points, batches of 45, Adam 1e-3 with reduce-on-plateau) and write history.csv, "
        "summary.csv, errors.png, proxies.png and summary.md (with the deck's numbers beside) to --out. "
        "The deck's full run is 10000 epochs; the Gelfand penalty makes RES stiff about 75 times slower "
        "per epoch than RES (optimisation time, train_time_s in summary.csv, i.e. the epochs with their JIT "
        "compilation and without the history rows: 387 s against 5.2 s for 500 epochs on 2 CPU cores; README).",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help=f"epochs (default: {defaults.epochs})")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--models", default=",".join(MODELS),
        help=f"comma-separated models among {', '.join(MODELS)} (default: all)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="data, initialisation and shuffling seed")
    parser.add_argument("--depth", type=int, default=defaults.depth, help=f"hidden layers (default: {defaults.depth})")
    parser.add_argument("--width", type=int, default=defaults.width, help=f"hidden width (default: {defaults.width})")
    parser.add_argument("--dim", type=int, default=defaults.dim, help=f"input dimension d (default: {defaults.dim})")
    parser.add_argument(
        "--record-every", type=int, default=defaults.record_every,
        help=f"epochs between history rows with the stiffness proxies (default: {defaults.record_every})",
    )
    parser.set_defaults(func=_train_resnet)


def _train_resnet(args) -> int:
    from .report import write_report
    from .training import train

    models = [resolve_model(name.strip()) for name in args.models.split(",") if name.strip()]
    if not models:
        raise ValueError(f"--models={args.models!r} names no model; valid choices: {', '.join(MODELS)}.")
    config = TrainConfig(
        dim=args.dim, width=args.width, depth=args.depth, epochs=args.epochs, seed=args.seed,
        record_every=args.record_every,
    )
    results = []
    for name in models:
        start = time.perf_counter()
        result = train(name, config, progress=True)
        final = result.final
        print(
            f"{name}: {config.epochs} epochs in {time.perf_counter() - start:.1f} s, "
            f"ER {final['er']:.4g}, GE {final['ge']:.4g}, "
            f"Gelfand spectral radius (sum over layers) {final['spectral_radius_gelfand']:.4g}",
            flush=True,
        )
        results.append(result)
    paths = write_report(results, args.out)
    print(f"wrote {', '.join(str(path) for path in paths.values())}")
    return 0
