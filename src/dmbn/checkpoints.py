"""A run's checkpoint: what identifies the run, and writing, reading and setting aside the file.

A checkpoint is resumed only by the run it belongs to. A run's identity is everything that shapes
its results: the training settings (seed, optimiser, batch size, estimators, device, protocol…),
the model (its full module tree: architecture, depth, width, batch-free norm and groups), the
data (a content hash of the standardised train, ESM and test tensors, so the data set, the split
and the regime), the torch thread count and the torch version (both change float rounding,
which training amplifies). Only ``RESUMABLE`` settings may differ: more epochs continue a
finished trajectory exactly, because the learning rate is constant (no schedule).

A checkpoint that does not match, or cannot be read, is never loaded: it is moved aside (kept,
named in the log) and the run starts over. One that holds pickled code is refused with an error.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("dmbn")

RESUMABLE = ("epochs",)  # settings a checkpoint may differ in and still be resumed


class CheckpointError(RuntimeError):
    """A checkpoint that must not be loaded; the message names the file and what to do."""


def identity(train: dict[str, Any], model: torch.nn.Module, data_hash: str) -> dict[str, Any]:
    """Everything that shapes a run's results, as a JSON-able dict (``train`` without RESUMABLE)."""
    return {"train": {k: v for k, v in train.items() if k not in RESUMABLE},
            "model": repr(model), "data": data_hash,
            "threads": torch.get_num_threads(), "torch": str(torch.__version__)}


def differences(stored: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """Keys (``train.lr``, ``data``…) where a stored identity differs from the current one. A
    training setting the stored identity lacks (added to dmbn later) counts as its default."""
    diff = [f"train.{k}" for k, v in current["train"].items()
            if stored.get("train", {}).get(k, defaults.get(k)) != v]
    return diff + [k for k in current if k != "train" and stored.get(k) != current[k]]


def save_atomic(obj: object, path: Path) -> None:
    """Write ``obj`` to a temporary file unique to this writer, then rename it into place."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}.part")
    buffer = io.BytesIO()  # torch names the archive's root after a file, so not after `partial`
    torch.save(obj, buffer)
    try:
        partial.write_bytes(buffer.getbuffer())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def load(path: Path, device: torch.device) -> dict | None:
    """The checkpoint's state; None (after moving it aside) if it is unreadable. Raises
    ``CheckpointError`` if it holds anything but tensors and plain data (pickled code)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            set_aside(path, f"it is unreadable ({error.__class__.__name__}: {_first_line(error)})")
            return None
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain data (written by other "
            f"code, or tampered with), so it was not loaded. If you trust it, inspect it with "
            f"torch.load(..., weights_only=False); otherwise delete it (rm {path}) and run again "
            f"to train this run from the start.") from None
    except Exception as error:  # truncated or garbled: torch raises assorted types
        set_aside(path, f"it is unreadable ({error.__class__.__name__}: {_first_line(error)})")
        return None


def set_aside(path: Path, reason: str) -> Path:
    """Rename ``path`` to ``<path>.stale-<UTC time>`` (kept for inspection) and log why."""
    target = path.with_name(f"{path.name}.stale-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    path.replace(target)
    log.warning("not resuming from checkpoint %s: %s; moved it to %s and starting over",
                path, reason, target)
    return target


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]
