"""Target 1: the cost of a whole table. The bank design (a BN run and a BN-BFN run, every
estimator, ESM logged every epoch) against one plain training run (nn.BatchNorm1d, no bank, no
ESM), and against the thesis's protocol (one training per static β, a DMBN run and a BN-BFN run,
each logging its own ESM).

Every run advances one epoch at a time, in turn (so all see the same machine), for ``--epochs``
epochs; the first is a warm-up. A run's cost at the thesis's 50 epochs is 50 x its median epoch
plus what it does once at the end (PreciseBN and recalibration for the bank runs).

    python benchmarks/bench_table_cost.py [--epochs 4] [--threads 1]
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Callable

import torch

from bench_step_overhead import minimal_epoch
from common import arguments, fashion_shaped, interleaved, machine
from dmbn.models import build_model
from dmbn.train import Run, TrainConfig, epoch_batches

THESIS_EPOCHS = 50


def plain_epochs(data) -> Callable[[], None]:
    """One epoch of a plain training run per call."""
    model = build_model("mlp", data.input_shape, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    return lambda: minimal_epoch(model, optimizer, data,
                                 epoch_batches(len(data.y_train), 100, generator, torch.device("cpu")))


def final_work(run: Run) -> float:
    """Seconds of the end-of-training estimators (PreciseBN, recalibrated) and their ESM."""
    start = time.perf_counter()
    run.holder.finish_training(run.training_context())
    if final := run.holder.stage_statistics("final"):
        run.measure(final)
    return time.perf_counter() - start


def main() -> None:
    args = arguments(__doc__, epochs=4)
    data = fashion_shaped()
    base = TrainConfig(epochs=THESIS_EPOCHS, batch_size=100, seed=0, precise_batches=200)
    separate = TrainConfig(**{**base.__dict__, "separate_beta": 0.1, "estimators": ("static",)})
    configs = {"bank BN": ("mlp", base), "bank BN-BFN": ("mlp-bnbfn", base),
               "separate static BN": ("mlp", separate), "separate static BN-BFN": ("mlp-bnbfn", separate),
               "DMBN-only BN": ("mlp", TrainConfig(**{**base.__dict__, "estimators": ("static", "dmbn")}))}
    torch.manual_seed(0)
    initial = {arch: build_model(arch, data.input_shape, 10) for arch in ("mlp", "mlp-bnbfn")}
    runs = {name: Run(copy.deepcopy(initial[arch]), data, cfg) for name, (arch, cfg) in configs.items()}
    epochs: dict[str, Callable[[], object]] = {"plain": plain_epochs(data)}
    epochs.update({name: run.next_epoch for name, run in runs.items()})
    times = interleaved(epochs, args.epochs)
    epoch = {name: statistics.median(t[1:]) for name, t in times.items()}
    final = {name: final_work(run) for name, run in runs.items()}
    cost = {name: THESIS_EPOCHS * epoch[name] + final.get(name, 0.0) for name in epochs}
    plain, ours = cost["plain"], cost["bank BN"] + cost["bank BN-BFN"]
    thesis = 9 * cost["separate static BN"] + cost["DMBN-only BN"] + cost["separate static BN-BFN"]
    print(f"machine: {machine()}; {args.epochs} epochs per run (first: warm-up), scaled to {THESIS_EPOCHS}")
    for name in epochs:
        print(f"  {name:24s} {epoch[name]:6.2f} s/epoch = {epoch[name] / epoch['plain']:.2f} x plain; "
              f"once at the end {final.get(name, 0.0):5.1f} s; {cost[name] / 60:5.1f} min")
    print(f"plain training run (nn.BatchNorm1d, no ESM)      {plain / 60:7.1f} min")
    print(f"whole table, bank design (BN + BN-BFN)           {ours / 60:7.1f} min "
          f"= {ours / plain:.2f} x plain  (target <= 2.5)")
    print(f"thesis protocol: 9 static runs + DMBN + BN-BFN   {thesis / 60:7.1f} min")
    print(f"thesis protocol / bank design = {thesis / ours:.2f} x  (expected >= 4)")


if __name__ == "__main__":
    main()
