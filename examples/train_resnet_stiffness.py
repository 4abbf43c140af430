"""Stiffness of ResNets read as explicit-Euler neural ODEs (Hudson et al., Sandia 2022).

1. Train RES, RES L2 and RES stiff on Alpine02 and write the report (history.csv, summary.csv,
   errors.png, proxies.png, summary.md with the deck's numbers beside ours).
2. Take the unpenalised and the stiffness-penalised networks, read their hidden layers as the
   neural ODE dx/dt = s tanh(W(t) x + b(t)), and compare per-layer gradient norms of the
   ResNet (explicit Euler) and of the ODE under Rodas5P and KenCarp4 over the time scale s;
   write gradients.csv and the decay fits of pystiffsens.study.fit_decay (fits.csv).

The deck's full run is 10000 epochs (``--epochs 10000``); the default here is a short run.
The deck's climate case (E3SM land model) needs data that is not public and is not included.

    python examples/train_resnet_stiffness.py --out resnet_out --epochs 200
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pystiffsens.resnet import TrainConfig, dataset, experiment, layer_gradient_frame, write_report
from pystiffsens.study import fit_decay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=4, help="test inputs the layer gradients are taken on")
    parser.add_argument("--stiffness", default="1,2,4,8,16", help="comma-separated time scales s")
    args = parser.parse_args()

    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    start = time.perf_counter()
    results = experiment(config=config)
    print(f"trained {len(results)} models for {config.epochs} epochs in {time.perf_counter() - start:.0f} s")
    for result in results:
        final = result.final
        print(f"  {result.model:9s} ER {final['er']:.4g}  GE {final['ge']:.4g}  "
              f"Gelfand {final['spectral_radius_gelfand']:.4g}  ({result.train_time_s:.0f} s)")
    paths = write_report(results, args.out)
    print(f"report: {paths['markdown']}")

    _, _, u_test, y_test = dataset(config)
    models = {r.model: r.params for r in results if r.model in ("RES", "RES_stiff")}
    grid = [float(s) for s in args.stiffness.split(",")]
    start = time.perf_counter()
    frame = layer_gradient_frame(models, u_test[: args.samples], y_test[: args.samples], stiffness=grid)
    print(f"layer gradients over s = {grid} in {time.perf_counter() - start:.0f} s")
    frame.to_csv(args.out / "gradients.csv", index=False)
    fits = fit_decay(frame)
    fits.to_csv(args.out / "fits.csv", index=False)
    table = fits.pivot_table(index=["problem", "param"], columns="solver", values="exponent")
    print("fitted exponent of |grad| ~ s^p per layer:")
    print(table.round(2).to_string())
    print(f"mean exponent by model and solver:\n{fits.groupby(['problem', 'solver'])['exponent'].mean().round(2)}")


if __name__ == "__main__":
    main()
