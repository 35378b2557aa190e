"""Shared by the benchmark scripts: FashionMNIST-shaped data and a timer."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from dmbn.data import RunData


def fashion_shaped(n_train: int = 48000, n_esm: int = 12000, n_test: int = 1000, seed: int = 0) -> RunData:
    """Standardised [N, 1, 28, 28] inputs with 10 learnable classes, the sizes of FashionMNIST's
    80/20 split (timings depend on shapes, not on pixels)."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(10, 1, 28, 28, generator=g)

    def sample(n: int):
        y = torch.randint(0, 10, (n,), generator=g)
        return prototypes[y] + 2.0 * torch.randn(n, 1, 28, 28, generator=g), y

    return RunData(*sample(n_train), *sample(n_esm), *sample(n_test), num_classes=10)


def arguments(doc: str, **extra: int | str):
    """Parse ``--threads`` (torch threads, default 1 as in the workflow's jobs) and the options in
    ``extra`` (name=default, of the default's type); sets the threads."""
    import argparse

    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--threads", type=int, default=1)
    for name, default in extra.items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args


def machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads"


def interleaved(work: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each callable per round, calling them in turn every round (in ``work``'s
    order), so that all see the same machine: this VM's speed drifts within minutes."""
    times: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(rounds):
        for name, call in work.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times
