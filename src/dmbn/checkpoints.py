"""A run's checkpoint: what identifies the run, and writing, reading and setting aside the file.

A checkpoint is resumed only by the run it belongs to. A run's identity is everything that shapes
its results: the training settings (seed, optimiser, batch size, estimators, device, protocol…),
the model (its full module tree: architecture, depth, width, batch-free norm and groups), the
data (a content hash of the standardised train, ESM and test tensors, so the data set, the split
and the regime), the torch thread count and the torch version (both change float rounding,
which training amplifies). Only ``RESUMABLE`` settings may differ: more epochs continue a
finished trajectory exactly, because the learning rate is constant (no schedule).

A checkpoint that does not match is never loaded: it is set aside under its identity's hash and
its epoch count (``<name>.<hash>.epoch<N>``, beside it, named in the log), and a run whose settings
return to that identity later resumes from it (``Run.resume``), so no finished epoch is lost to a
changed setting. dmbn never deletes a checkpoint: set-aside files stay until you remove them (each
identity and epoch count has at most one). One that cannot be read is set aside under
``<name>.stale-<UTC time>`` (no identity known, never resumed). One that holds pickled code is
refused with an error.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import re
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


def identity_hash(identity: dict[str, Any], defaults: dict[str, Any] | None = None) -> str:
    """The first 16 hex digits of the SHA-256 of ``identity`` as canonical JSON (sorted keys). A
    training setting it lacks (written before dmbn had it) counts as its default, as in
    ``differences``, so an old checkpoint is filed under the identity it would match."""
    known = {k: v for k, v in (defaults or {}).items() if k not in RESUMABLE}
    filled = {**identity, "train": {**known, **identity.get("train", {})}}
    canonical = json.dumps(filled, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def aside_path(path: Path, identity_digest: str, epoch: int) -> Path:
    """Where checkpoint ``path`` of that identity and epoch count is set aside: beside it."""
    return path.with_name(f"{path.name}.{identity_digest}.epoch{epoch}")


def set_aside_checkpoints(path: Path, identity_digest: str | None = None) -> dict[Path, int]:
    """Checkpoints set aside from ``path`` (of one identity, if given) -> their epoch counts, read
    from their names: finding them needs no loading."""
    digest = re.escape(identity_digest) if identity_digest else "[0-9a-f]{16}"
    pattern = re.compile(rf"{re.escape(path.name)}\.{digest}\.epoch(\d+)")
    if not path.parent.is_dir():
        return {}
    return {p: int(match[1]) for p in path.parent.iterdir() if (match := pattern.fullmatch(p.name))}


def read(path: Path, device: torch.device) -> tuple[dict | None, str | None]:
    """The checkpoint's state, or None and why it is unreadable. Raises ``CheckpointError`` if it
    holds anything but tensors and plain data (pickled code)."""
    try:
        return torch.load(path, map_location=device, weights_only=True), None
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            return None, f"it is unreadable ({error.__class__.__name__}: {_first_line(error)})"
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain data (written by other "
            f"code, or tampered with), so it was not loaded. If you trust it, inspect it with "
            f"torch.load(..., weights_only=False); otherwise delete it (rm {path}) and run again: "
            f"the run resumes from a set-aside checkpoint made with the same settings if one is "
            f"left beside it, else it trains from the start.") from None
    except Exception as error:  # truncated or garbled: torch raises assorted types
        return None, f"it is unreadable ({error.__class__.__name__}: {_first_line(error)})"


def set_aside(path: Path, reason: str, target: Path | None = None, then: str = "starting over") -> Path:
    """Rename ``path`` to ``target``, or, without one or if it is taken (an earlier set-aside
    checkpoint of the same identity and epochs: kept), to ``<path>.stale-<UTC time>``; log why and
    what the run does ``then``."""
    if target is None or target.exists():
        target = path.with_name(f"{path.name}.stale-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    path.replace(target)
    log.warning("not resuming from checkpoint %s: %s; moved it to %s and %s", path, reason, target, then)
    return target


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]
