"""Shared by the benchmark scripts: FashionMNIST-shaped data and a timer."""

from __future__ import annotations

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


def repeats_and_data(doc: str) -> tuple[int, RunData]:
    """The ``--repeats`` argument and the data set every benchmark uses."""
    import argparse

    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    torch.manual_seed(0)
    return repeats, fashion_shaped()


def machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads"
