"""Fault injection for the reliability tests, unset in normal use (then ``reached`` is two
dictionary lookups and nothing else).

``DMBN_KILL_AT=<point>:<epoch>`` makes a training process SIGKILL itself when it reaches ``point``
in ``epoch`` (1-based), exactly as an OOM killer, ``scancel`` or a node failure would.

``DMBN_PAUSE_AT=<point>:<epoch>`` with ``DMBN_PAUSE_DIR=<folder>`` makes it stop there instead: it
creates ``<folder>/paused`` and waits until ``<folder>/resume`` exists. A test thus knows, by an
event and not by a clock, that a run is inside a training job (to start a second Snakemake beside
it, or to interrupt it), and decides when it goes on.

Points: ``step`` (middle of the epoch), ``esm`` (during the epoch's ESM measurement),
``checkpoint`` (right after the epoch's checkpoint is written and its progress line logged)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

POINTS = ("step", "esm", "checkpoint")
PAUSED, RESUME = "paused", "resume"  # the files of a pause's handshake in DMBN_PAUSE_DIR


def reached(point: str, epoch: int) -> None:
    """Kill or pause this process if the environment asks for ``point`` in ``epoch``."""
    here = f"{point}:{epoch}"
    if os.environ.get("DMBN_KILL_AT") == here:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("DMBN_PAUSE_AT") == here:
        pause(Path(os.environ["DMBN_PAUSE_DIR"]))


def pause(folder: Path) -> None:
    """Announce the pause (``paused``, written atomically) and wait for ``resume`` to appear."""
    folder.mkdir(parents=True, exist_ok=True)
    announce = folder / f".{PAUSED}.{os.getpid()}"
    announce.write_text(str(os.getpid()))
    announce.replace(folder / PAUSED)
    while not (folder / RESUME).exists():  # the condition is the test's event; no deadline here
        time.sleep(0.05)
