"""Reading the files of many runs into one frame labelled by run (dataset, regime, arch, seed, member)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

RUN_KEYS = ("dataset", "regime", "arch", "seed", "member")


def read_runs(paths: Iterable[str | Path], labels: Iterable[Mapping]) -> pd.DataFrame:
    """Concatenate one CSV per run, each row carrying its run's labels (the keys of RUN_KEYS)."""
    frames = []
    for path, label in zip(paths, labels):
        frame = pd.read_csv(path)
        for key in reversed(RUN_KEYS):
            if key in label:
                frame.insert(0, key, label[key])
        frames.append(frame)
    if not frames:
        raise ValueError("no runs to read")
    return pd.concat(frames, ignore_index=True)
