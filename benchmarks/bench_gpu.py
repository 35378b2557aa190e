"""Target 5 (GPU): ResNet-50 training throughput on CIFAR-shaped data held on the device
(augmentation on the device), in images/s, with the speed settings off and on; the ESM pass of
11 estimators; and the MLP's epoch eager against ``compile: true``. Everything runs through
``dmbn.train.Run``, as the workflow's jobs do.

    python benchmarks/bench_gpu.py                    # on a CUDA machine
    python benchmarks/bench_gpu.py --device cpu --train 200 --esm 100 --epochs 1 --resnet-channels 8 --blocks 1

(the second line is a smoke test; on this project's CPU VM the ResNet passes are bound by page
faults, glibc handing freed activations back to the OS: MALLOC_MMAP_THRESHOLD_=4294967296
MALLOC_TRIM_THRESHOLD_=68719476736 in the environment made an eval forward 3.5x faster.)
"""

from __future__ import annotations

import argparse
import time

import torch

from common import fashion_shaped
from dmbn.data import RunData
from dmbn.esm import measure_esm
from dmbn.models import build_model
from dmbn.train import Run, TrainConfig

SETTINGS = {  # name -> TrainConfig fields
    "fp32": {},
    "bf16 autocast + channels_last": {"amp": True, "channels_last": True},
    "bf16 autocast + channels_last + compile": {"amp": True, "channels_last": True, "compile": True},
}


def cifar_shaped(n_train: int, n_esm: int, device: str) -> RunData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + 2 * n_esm, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (len(x),), generator=g)
    parts = (slice(0, n_train), slice(n_train, n_train + n_esm), slice(n_train + n_esm, None))
    return RunData(*[t[p] for p in parts for t in (x, y)], num_classes=10).to(device)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_epochs(run: Run, epochs: int, device: str) -> float:
    """Seconds per epoch after one warm-up (compiling) epoch."""
    run.train_epoch()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        run.train_epoch()
    synchronize(device)
    return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--train", type=int, default=20000, help="training samples per epoch")
    parser.add_argument("--esm", type=int, default=10000, help="ESM-set samples (CIFAR's 20 %% split)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=0, help="blocks per stage (0: ResNet-50's)")
    parser.add_argument("--resnet-channels", type=int, default=64)
    args = parser.parse_args()
    blocks = {"resnet_blocks": (args.blocks,) * 4} if args.blocks else {}
    torch.backends.cudnn.benchmark = True
    data = cifar_shaped(args.train, args.esm, args.device)
    print(f"device: {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}; "
          f"torch {torch.__version__}; ResNet-50 (32x32 stem), batch {args.batch}, augmentation on the device")
    for name, fields in SETTINGS.items():
        torch.manual_seed(0)
        model = build_model("resnet50", data.input_shape, 10, resnet_channels=args.resnet_channels, **blocks)
        cfg = TrainConfig(batch_size=args.batch, augment=True, device=args.device, **fields)
        run = Run(model, data, cfg)
        seconds = timed_epochs(run, args.epochs, args.device)
        print(f"  {name:42s} {args.train / seconds:9.0f} images/s  (target >= 10,000 on an H100)")
    estimators = {**run.holder.stage_statistics("epoch"), **run.holder.stage_statistics("chosen")}
    start = time.perf_counter()
    measure_esm(run.model, estimators, data.x_esm, data.y_esm, chunk=1000)
    synchronize(args.device)
    esm = time.perf_counter() - start
    print(f"  ESM of 11 estimators on {len(data.y_esm)} samples: {esm:.2f} s "
          f"= {esm / (len(data.y_esm) / args.train * seconds):.2f} x the training time of as many samples")
    mlp_data = fashion_shaped(n_train=args.train, n_esm=100, n_test=100).to(args.device)
    for compiled in (False, True):
        torch.manual_seed(0)
        run = Run(build_model("mlp", mlp_data.input_shape, 10), mlp_data,
                  TrainConfig(batch_size=args.batch, device=args.device, compile=compiled))
        seconds = timed_epochs(run, args.epochs, args.device)
        steps = args.train // args.batch
        print(f"  MLP 20x128 step, {'compile: true' if compiled else 'eager        '}  {seconds / steps * 1e3:7.3f} ms")


if __name__ == "__main__":
    main()
