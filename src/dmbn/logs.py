"""Logging for workflow steps: everything the library logs, and any error, goes to the job's log."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FORMAT = "%(asctime)s %(levelname)s %(message)s"


@contextmanager
def logging_to(path: str | Path, history: Path | None = None) -> Iterator[logging.Logger]:
    """Log to ``path`` (and stderr) inside the block; an exception is logged before it propagates.

    ``history``: a file that outlives the job's log (Snakemake deletes a job's log before it runs
    the job again): its lines are copied into the log first, and every new line goes to both."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    earlier = history.read_text() if history is not None and history.exists() else ""
    Path(path).write_text(earlier)
    echo = logging.StreamHandler(sys.stderr)
    # `snakemake --logger dmbn` (the local profile) keeps the terminal to warnings and one
    # progress line: it asks the jobs to echo only warnings; the log file keeps every line
    echo.setLevel(os.environ.get("DMBN_JOB_ECHO", "info").upper())
    handlers = [logging.FileHandler(path, mode="a"), echo]
    if history is not None:
        handlers.append(logging.FileHandler(history, mode="a"))
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    log = logging.getLogger("dmbn")
    try:
        yield log
    except Exception as error:
        log.error("%s: %s", type(error).__name__, error)
        raise
    finally:
        for handler in handlers:
            handler.flush()


def run_history(checkpoint: Path) -> Path:
    """A resumable run's log across its attempts, kept beside its checkpoint (``<name>.log``):
    emptied when there is no checkpoint to resume, its own or one set aside (which a run with that
    checkpoint's settings resumes), so a fresh start begins a fresh log."""
    from .checkpoints import set_aside_checkpoints  # torch: only for the scripts that train

    history = checkpoint.with_suffix(".log")
    if not checkpoint.exists() and not set_aside_checkpoints(checkpoint):
        history.unlink(missing_ok=True)
    history.parent.mkdir(parents=True, exist_ok=True)
    return history
