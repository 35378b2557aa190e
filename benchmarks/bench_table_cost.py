"""Targets 1: the cost of a whole table. The bank design (a BN run and a BN-BFN run, every
estimator, ESM logged every epoch) against one plain training run (nn.BatchNorm1d, no bank, no
ESM), and against the thesis's protocol (one training per static β, a DMBN run and a BN-BFN run,
each logging its own ESM). Runs are measured at reduced epochs and scaled to the thesis's 50:
cost(50) = 50 x (seconds per epoch) + (one-off end-of-training work).

    python benchmarks/bench_table_cost.py [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import time

import torch

from bench_step_overhead import minimal_epoch
from common import arguments, fashion_shaped, machine
from dmbn.models import build_model
from dmbn.train import TrainConfig, epoch_batches, train_run

THESIS_EPOCHS = 50


def scaled_run(arch: str, data, cfg: TrainConfig) -> float:
    """Seconds for THESIS_EPOCHS epochs: the mean time of the epochs between the first (warm-up)
    and the last, times 50, plus what the last epoch costs beyond that (PreciseBN and
    recalibration)."""
    marks = [time.perf_counter()]
    torch.manual_seed(0)
    train_run(build_model(arch, data.input_shape, 10), data, cfg, on_epoch=lambda e: marks.append(time.perf_counter()))
    durations = [b - a for a, b in zip(marks, marks[1:])]
    per_epoch = sum(durations[1:-1]) / len(durations[1:-1])
    return THESIS_EPOCHS * per_epoch + max(durations[-1] - per_epoch, 0.0)


def plain_run(data, epochs: int) -> float:
    torch.manual_seed(0)
    model = build_model("mlp", data.input_shape, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        minimal_epoch(model, optimizer, data, epoch_batches(len(data.y_train), 100, generator, torch.device("cpu")))
    return (time.perf_counter() - start) / epochs * THESIS_EPOCHS  # no warm-up excluded: favours plain


def main() -> None:
    args = arguments(__doc__, epochs=3)  # epochs measured per run (>= 3)
    data = fashion_shaped()
    base = TrainConfig(epochs=args.epochs, batch_size=100, seed=0, precise_batches=200)
    plain = plain_run(data, args.epochs)
    bank_bn = scaled_run("mlp", data, base)
    bank_bfn = scaled_run("mlp-bnbfn", data, base)
    separate = TrainConfig(**{**base.__dict__, "separate_beta": 0.1, "estimators": ("static",)})
    one_static = scaled_run("mlp", data, separate)
    bfn_static = scaled_run("mlp-bnbfn", data, separate)
    dmbn_run = scaled_run("mlp", data, TrainConfig(**{**base.__dict__, "estimators": ("static", "dmbn")}))
    ours = bank_bn + bank_bfn
    thesis = 9 * one_static + dmbn_run + bfn_static
    print(f"machine: {machine()}; measured {args.epochs} epochs per run, scaled to {THESIS_EPOCHS}")
    print(f"plain training run (nn.BatchNorm1d, no ESM)      {plain / 60:7.1f} min")
    print(f"bank run, BN   (13 estimators, ESM every epoch)  {bank_bn / 60:7.1f} min")
    print(f"bank run, BN-BFN                                 {bank_bfn / 60:7.1f} min")
    print(f"whole table, bank design                         {ours / 60:7.1f} min "
          f"= {ours / plain:.2f} x plain  (target <= 2.5)")
    print(f"thesis protocol: 9 static runs {9 * one_static / 60:.1f} + DMBN {dmbn_run / 60:.1f} "
          f"+ BN-BFN {bfn_static / 60:.1f} = {thesis / 60:7.1f} min")
    print(f"thesis protocol / bank design = {thesis / ours:.2f} x  (expected >= 4)")


if __name__ == "__main__":
    main()
