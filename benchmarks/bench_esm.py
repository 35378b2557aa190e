"""Target 3: ESM for every estimator of a bank on a 12,000-sample ESM set, against one training
epoch on 48,000 samples: one pass per estimator (before) against one stacked pass over all of
them (after: dmbn.esm, what training uses).

    python benchmarks/bench_esm.py [--repeats 3] [--threads 1] [--chunk 2048] [--every 1]

The estimators are those measured every epoch (stages ``epoch`` and ``chosen``) of the default
set, or with ``--every 1`` of every kind in ``dmbn.names.ESTIMATORS``.
"""

from __future__ import annotations

import statistics

from common import arguments, fashion_shaped, interleaved, machine

from dmbn.esm import ESM_CHUNK, measure_esm, stacked_expected_statistics
from dmbn.models import build_model
from dmbn.names import DEFAULT_ESTIMATORS, ESTIMATOR_KINDS
from dmbn.train import Run, TrainConfig


def main() -> None:
    args = arguments(__doc__, repeats=3, chunk=ESM_CHUNK, every=0)
    kinds = ESTIMATOR_KINDS if args.every else DEFAULT_ESTIMATORS
    data = fashion_shaped()
    cfg = TrainConfig(batch_size=100, seed=0, estimators=kinds)
    run = Run(build_model("mlp", data.input_shape, 10), data, cfg)
    run.train_epoch()  # the estimators' statistics after an epoch, as ESM measures them
    estimators = {**run.holder.stage_statistics("epoch"), **run.holder.stage_statistics("chosen")}

    def one_pass_each() -> None:
        for stats in estimators.values():
            stacked_expected_statistics(run.model, [stats], data.x_esm, args.chunk)

    def stacked() -> None:
        measure_esm(run.model, estimators, data.x_esm, data.y_esm, args.chunk)

    # the epoch is timed in the same rounds: this VM's speed drifts within minutes
    times = interleaved({"epoch": run.train_epoch, "each": one_pass_each, "stacked": stacked}, args.repeats)
    epoch, loop, together = (statistics.median(times[k]) for k in ("epoch", "each", "stacked"))
    print(f"machine: {machine()}; chunk {args.chunk}")
    print(f"one training epoch (48,000 samples)          {epoch:.3f} s  ({', '.join(kinds)})")
    print(f"ESM of {len(estimators)} estimators, one pass each (12,000)  {loop:.3f} s  "
          f"= {loop / epoch:.3f} x epoch")
    print(f"ESM of {len(estimators)} estimators, one stacked pass        {together:.3f} s  "
          f"= {together / epoch:.3f} x epoch  (target <= 0.5)")
    print(f"stacked / one pass each = {together / loop:.2f}")


if __name__ == "__main__":
    main()
