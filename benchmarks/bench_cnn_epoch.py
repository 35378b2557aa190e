"""The convolutional half on this CPU: one training epoch of the width-scaled ResNet-50 (and
XBNBlock-P2) on FashionMNIST-shaped 1x28x28 data, measured before any choice of settings.

Every figure is a ratio of times measured side by side in one run (``common.interleaved``):

* a bare PyTorch loop (forward, cross entropy, backward, SGD step) in four variants: fp32 NCHW,
  channels_last, bf16 autocast (``torch.autocast("cpu")``), ``torch.compile``; each against fp32;
* the project's loop (``dmbn.train.Run.train_epoch``: the estimator bank observing every BN layer,
  53 at ResNet-50's depth) against the bare fp32 loop;
* one epoch's stacked ESM pass of every estimator ready at the epoch's end (``Run.measure`` of
  the ``epoch`` stage: DMBN's candidates and the others; DMBN's own pass is small) on the ESM set,
  and on a subsample of it, against the epoch's training.

    python benchmarks/bench_cnn_epoch.py --channels 16 --batch 100 --train 2000 --esm 2000 --sizes 8,16,32

``--sizes``: the project's loop is timed at these batch sizes too (minutes per 48,000-sample
epoch), which is what sizes a study's epochs and width; ``--channels_last 1`` times them (and
the ESM passes) with the study's ``train.channels_last: true``, ``--every_kind 1`` with every
estimator kind of ``dmbn.names.ESTIMATOR_KINDS`` (the ESM pass grows with the rows). ``--xbn 1``: XBNBlock-P2.

``--train`` samples are timed per round and scaled to 48,000 (FashionMNIST's 80 % split) for the
minutes per epoch; the ratios do not depend on it. The CPU's instruction set (``lscpu``) decides
what bf16 and channels_last give: the line "cpu:" records it with the figures.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import replace

import torch
import torch.nn.functional as F

from common import arguments, fashion_shaped, interleaved, machine
from dmbn.cards import cpu_kind
from dmbn.models import build_model
from dmbn.names import ESTIMATOR_KINDS
from dmbn.train import Run, TrainConfig, epoch_batches

FULL_EPOCH = 48_000  # FashionMNIST's training part after the 80/20 split
FULL_ESM = 12_000    # and its ESM set


def bare_epoch(model, optimizer, x, y, batches, *, channels_last=False, bf16=False) -> None:
    """What anyone would write, with one speed setting at a time."""
    model.train()
    for index in batches:
        inputs = x[index]
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(inputs), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main() -> None:
    args = arguments(__doc__, channels=16, batch=100, train=2000, esm=2000, subsample=500, repeats=3,
                     compile=1, xbn=0, sizes="8,16,32", channels_last=0, every_kind=0)
    arch = "resnet50-xbnblock-p2" if args.xbn else "resnet50"
    data = fashion_shaped(n_train=args.train, n_esm=args.esm, n_test=100)
    initial = build_model(arch, data.input_shape, 10, resnet_channels=args.channels)
    batches = epoch_batches(args.train, args.batch, torch.Generator().manual_seed(0), torch.device("cpu"))

    def bare(**how):
        model = copy.deepcopy(initial)
        if how.get("channels_last"):
            model = model.to(memory_format=torch.channels_last)
        if how.pop("compiled", False):
            model = torch.compile(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        return lambda: bare_epoch(model, optimizer, data.x_train, data.y_train, batches, **how)

    work = {"fp32 NCHW": bare(), "channels_last": bare(channels_last=True), "bf16 autocast": bare(bf16=True)}
    if args.compile:
        work["torch.compile"] = bare(compiled=True)
        work["torch.compile"]()  # compiles outside the timed rounds
    study = TrainConfig(batch_size=args.batch, seed=0, channels_last=bool(args.channels_last),
                        **({"estimators": ESTIMATOR_KINDS} if args.every_kind else {}))
    work["project loop (bank observing)"] = Run(copy.deepcopy(initial), data,
                                                TrainConfig(batch_size=args.batch, seed=0)).train_epoch
    work["project loop, channels_last"] = Run(copy.deepcopy(initial), data,
                                              replace(study, channels_last=True)).train_epoch
    run = Run(copy.deepcopy(initial), data, study)  # the ESM passes as the study runs them
    run.train_epoch()  # observed batches: the epoch-stage estimators have statistics to measure
    work["ESM, every estimator"] = lambda: run.measure(run.holder.stage_statistics("epoch"))
    small = Run(copy.deepcopy(initial), fashion_shaped(n_train=args.train, n_esm=args.subsample, n_test=100),
                study)
    small.train_epoch()
    work[f"ESM on {args.subsample} samples"] = lambda: small.measure(small.holder.stage_statistics("epoch"))
    for size in (int(b) for b in str(args.sizes).split(",") if b):
        work[f"project loop at B = {size}"] = Run(copy.deepcopy(initial), data,
                                                  replace(study, batch_size=size)).train_epoch
    times = {name: statistics.median(t) for name, t in interleaved(work, args.repeats).items()}

    base = times["fp32 NCHW"]
    bank = times["project loop (bank observing)"]
    print(f"machine: {machine()}\ncpu: {cpu_kind()}")
    print(f"{arch}, resnet_channels {args.channels}, ESM and B rows channels_last {bool(args.channels_last)}, "
          f"estimators {'every kind' if args.every_kind else 'default'}"
          f" ({sum(p.numel() for p in initial.parameters()):,} "
          f"parameters), batch {args.batch}, {args.train} samples per round, median of {args.repeats}")
    for name, seconds in times.items():
        per_epoch = seconds * FULL_EPOCH / args.train / 60 if not name.startswith("ESM") else None
        scaled = f"{per_epoch:6.1f} min per 48,000-sample epoch" if per_epoch else ""
        print(f"  {name:34s} {seconds:8.2f} s   x {seconds / base:5.2f} of fp32 NCHW   {scaled}")
    # at FashionMNIST's sizes: the epoch trains on 48,000 samples, the ESM measures 12,000 (or a subsample)
    train, full_esm = bank * FULL_EPOCH / args.train, times["ESM, every estimator"] * FULL_ESM / args.esm
    sub_esm = times[f"ESM on {args.subsample} samples"]
    bare_epoch_s = base * FULL_EPOCH / args.train
    print(f"  at full size: bank run = {(train + full_esm) / bare_epoch_s:.2f} x the bare fp32 loop with the ESM of "
          f"all {FULL_ESM:,} ESM samples (ESM {full_esm / train:.2f} x the training), "
          f"{(train + sub_esm) / bare_epoch_s:.2f} x with {args.subsample} (goal <= 1.5)")


if __name__ == "__main__":
    main()
