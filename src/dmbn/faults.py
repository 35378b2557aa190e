"""Fault injection for the reliability tests: ``DMBN_KILL_AT=<point>:<epoch>`` makes a training
process SIGKILL itself when it reaches ``point`` in ``epoch`` (1-based), exactly as an OOM killer,
``scancel`` or a node failure would. Points: ``step`` (middle of the epoch), ``esm`` (during the
epoch's ESM measurement), ``checkpoint`` (right after the epoch's checkpoint is written and its progress line logged).
Unset in normal use: then ``reached`` is a dictionary lookup and nothing else."""

from __future__ import annotations

import os
import signal

POINTS = ("step", "esm", "checkpoint")


def reached(point: str, epoch: int) -> None:
    """Kill this process if the environment asks for ``point`` in ``epoch``."""
    target = os.environ.get("DMBN_KILL_AT")
    if target and target == f"{point}:{epoch}":
        os.kill(os.getpid(), signal.SIGKILL)
