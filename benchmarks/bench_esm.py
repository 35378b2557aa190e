"""Target 3: ESM for every estimator of a bank on a 12,000-sample ESM set, against one training
epoch on 48,000 samples; one pass per estimator (before) and one stacked pass (after).

    python benchmarks/bench_esm.py [--repeats 3]
"""

from __future__ import annotations

import statistics
import time


from common import arguments, fashion_shaped, machine
from dmbn.esm import measure_esm
from dmbn.models import build_model
from dmbn.train import Run, TrainConfig


def main() -> None:
    repeats = arguments(__doc__, repeats=3).repeats
    data = fashion_shaped()
    run = Run(build_model("mlp", data.input_shape, 10), data, TrainConfig(batch_size=100, seed=0))
    start = time.perf_counter()
    run.train_epoch()
    epoch = time.perf_counter() - start
    estimators = {name: run.bank.statistics(name) for name in run.bank.candidates + ["cma", "dmbn"]}
    times = {False: [], True: []}
    for _ in range(repeats):
        for stacked in (False, True):
            start = time.perf_counter()
            measure_esm(run.model, estimators, data.x_esm, data.y_esm, stacked=stacked)
            times[stacked].append(time.perf_counter() - start)
    loop, stacked = (statistics.median(times[k]) for k in (False, True))
    print(f"machine: {machine()}")
    print(f"one training epoch (48,000 samples)          {epoch:.3f} s")
    print(f"ESM of {len(estimators)} estimators, one pass each (12,000)  {loop:.3f} s  "
          f"= {loop / epoch:.3f} x epoch")
    print(f"ESM of {len(estimators)} estimators, one stacked pass        {stacked:.3f} s  "
          f"= {stacked / epoch:.3f} x epoch")
    print(f"stacked / one pass each = {stacked / loop:.2f}; best = {min(loop, stacked) / epoch:.3f} x epoch "
          f"(target <= 0.5)")


if __name__ == "__main__":
    main()
