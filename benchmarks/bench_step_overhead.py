"""Target 2: the project's training loop (bank observing, no ESM) against a minimal hand-written
PyTorch loop on the same model, data and batch order. Prints seconds per epoch and the ratio.

    python benchmarks/bench_step_overhead.py [--repeats 3] [--compile 1] [--every 1]

``--every 1`` gives the bank every estimator kind of ``dmbn.names.ESTIMATORS`` (opt-in ones too)
instead of the default set.

``--compile 1`` also times the project's loop with ``train: {compile: true}`` (compiled in an
untimed first epoch).
"""

from __future__ import annotations

import copy
import statistics

import torch
import torch.nn.functional as F

from common import arguments, fashion_shaped, interleaved, machine
from dmbn.models import build_model
from dmbn.names import DEFAULT_ESTIMATORS, ESTIMATOR_KINDS
from dmbn.train import Run, TrainConfig, epoch_batches


def minimal_epoch(model, optimizer, data, batches) -> None:
    """What anyone would write: forward, loss, backward, step."""
    model.train()
    for index in batches:
        loss = F.cross_entropy(model(data.x_train[index]), data.y_train[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main() -> None:
    args = arguments(__doc__, repeats=3, compile=0, every=0)
    kinds = ESTIMATOR_KINDS if args.every else DEFAULT_ESTIMATORS
    data = fashion_shaped()
    initial = build_model("mlp", data.input_shape, 10)
    minimal_model = copy.deepcopy(initial)
    optimizer = torch.optim.SGD(minimal_model.parameters(), lr=0.1, momentum=0.9)
    run = Run(copy.deepcopy(initial), data, TrainConfig(batch_size=100, seed=0, estimators=kinds))
    compiled = Run(copy.deepcopy(initial), data, TrainConfig(batch_size=100, seed=0, compile=True)) \
        if args.compile else None
    if compiled:
        compiled.train_epoch()  # compiles
    def minimal() -> None:  # the batch order the project's loop is about to draw
        state = run.generator.get_state()
        batches = epoch_batches(len(data.y_train), 100, torch.Generator().set_state(state), torch.device("cpu"))
        minimal_epoch(minimal_model, optimizer, data, batches)

    work = {"minimal": minimal, "project": run.train_epoch}
    if compiled:
        work["compiled"] = compiled.train_epoch
    times = interleaved(work, args.repeats)
    minimal, project = (statistics.median(times[k]) for k in ("minimal", "project"))
    print(f"machine: {machine()}")
    print(f"minimal loop   {minimal:.3f} s/epoch (480 steps of 100)")
    print(f"project loop   {project:.3f} s/epoch (bank of {len(run.holder.names)} estimators observing: "
          f"{', '.join(kinds)})")
    print(f"ratio project/minimal = {project / minimal:.3f}  (target <= 1.10)")
    if compiled:
        fast = statistics.median(times["compiled"])
        print(f"project loop, compile: true   {fast:.3f} s/epoch = {fast / minimal:.3f} x minimal")


if __name__ == "__main__":
    main()
