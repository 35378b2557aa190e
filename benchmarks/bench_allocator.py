"""glibc's allocator settings (dmbn.allocator) against its defaults, measured in one run: the
CPU time of a width-8 ResNet-50's eval forward (4,096 samples, the workflow's prediction chunk),
ten training steps at B = 100, and the 20x128 MLP's eval forward, each in a fresh process (glibc
reads the settings at start-up), alternated over ``--repeats`` rounds; ratios of medians.

    python benchmarks/bench_allocator.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from dmbn.allocator import GLIBC_MALLOC

WORKLOADS = ("resnet eval", "resnet train", "mlp eval")


def child(workload: str) -> float:
    """Process time of one workload (after one warm-up call), in this process."""
    import torch

    from dmbn.models import build_model

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4096, 1, 28, 28, generator=g), torch.randint(0, 10, (4096,), generator=g)
    if workload.startswith("resnet"):
        model = build_model("resnet50", (1, 28, 28), 10, resnet_channels=8, resnet_blocks=[3, 4, 6, 3])
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    else:
        model = build_model("mlp", (1, 28, 28), 10, depth=20, width=128)
    if workload.endswith("eval"):
        model.eval()
        with torch.no_grad():
            model(x[:256])
            start = time.process_time()
            model(x)
            return time.process_time() - start
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    start = None
    for step in range(11):
        if step == 1:
            start = time.process_time()
        part = slice(100 * step, 100 * (step + 1))
        loss = torch.nn.functional.cross_entropy(model(x[part]), y[part])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return time.process_time() - start


def measure(workload: str, tuned: bool) -> float:
    environ = {k: v for k, v in os.environ.items() if k not in GLIBC_MALLOC}
    if tuned:
        environ.update(GLIBC_MALLOC)
    out = subprocess.run([sys.executable, __file__, "--child", workload], env=environ, check=True,
                         capture_output=True, text=True).stdout
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(child(args.child))
        return
    print(f"{'workload':<14} {'glibc defaults (CPU s)':>23} {'dmbn.allocator (CPU s)':>23} {'ratio':>6}")
    for workload in WORKLOADS:
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for tuned in (False, True):
                times[tuned].append(measure(workload, tuned))
        plain, tuned = statistics.median(times[False]), statistics.median(times[True])
        print(f"{workload:<14} {plain:>23.2f} {tuned:>23.2f} {plain / tuned:>5.2f}x")


if __name__ == "__main__":
    main()
