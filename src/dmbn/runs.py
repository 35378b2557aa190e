"""Reading the files of many runs into one frame labelled by run (dataset, regime, arch, seed, member)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from .readback import read_card, read_run_file

RUN_KEYS = ("dataset", "regime", "arch", "seed", "member")
BETA_COLUMNS = ("epoch", "layer", "estimator", "beta")  # betas.csv: β* of each kind that chooses one


def with_choosing_kind(betas: pd.DataFrame) -> pd.DataFrame:
    """β* rows (``betas.csv`` or its summary) with their ``estimator`` column: files written
    before it existed hold DMBN's alone."""
    return betas if "estimator" in betas.columns else betas.assign(estimator="dmbn")


def chosen_by(betas: pd.DataFrame, kind: str = "dmbn") -> pd.DataFrame:
    """The β* rows of one choosing kind (``dmbn``, ``dmbn-sigma``, ``dmbn-mu-sigma``)."""
    betas = with_choosing_kind(betas)
    return betas[betas.estimator == kind]


def read_runs(paths: Iterable[str | Path], labels: Iterable[Mapping]) -> pd.DataFrame:
    """Concatenate one CSV per run, each row carrying its run's labels (the keys of RUN_KEYS).
    Each file is checked against the schema of its kind (``dmbn.readback``) and, where its label
    says what the run holds (``expect``: ``dmbn.config.run_expectation``), for those rows."""
    frames = []
    for path, label in zip(paths, labels):
        frame = read_run_file(path, label.get("expect"))
        for key in reversed(RUN_KEYS):
            if key in label:
                frame.insert(0, key, label[key])
        frames.append(frame)
    if not frames:
        raise ValueError("no runs to read")
    return pd.concat(frames, ignore_index=True)


def read_present_runs(paths: Iterable[str | Path], labels: Iterable[Mapping]) -> pd.DataFrame | None:
    """``read_runs`` over the runs that have the file (an optional one, e.g. ``precise_spread.csv``,
    which only some runs write); None when none has it."""
    present = [(path, label) for path, label in zip(paths, labels) if Path(path).is_file()]
    return read_runs(*zip(*present)) if present else None


CARD_COLUMNS = ("dmbn_version", "commit", "commit_dirty", "python", "torch", "torchvision", "snakemake",
                "device", "threads", "hostname", "started", "finished", "wall_seconds", "epochs_run",
                "resumed_from_epoch", "segments", "commits")
# Fields cards gained later: a card written before them reads "not recorded".
LATER_CARD_COLUMNS = ("cpu", "numpy", "scikit-learn")


def read_cards(paths: Iterable[str | Path], labels: Iterable[Mapping]) -> pd.DataFrame:
    """One row per run from its card (``dmbn.names.RUN_CARD``): run labels first, then the card's
    fields, its training segments flattened to their count and their distinct commits (in order)."""
    rows = []
    for path, label in zip(paths, labels):
        card = read_card(path)
        commits = dict.fromkeys(segment["commit"] for segment in card["segments"])
        rows.append({**{k: label[k] for k in RUN_KEYS}, **{k: card[k] for k in CARD_COLUMNS[:-2]},
                     "segments": len(card["segments"]), "commits": " ".join(commits),
                     **{k: card.get(k, "not recorded") for k in LATER_CARD_COLUMNS}})
    if not rows:
        raise ValueError("no run cards to read")
    return pd.DataFrame(rows, columns=[*RUN_KEYS, *CARD_COLUMNS, *LATER_CARD_COLUMNS])
