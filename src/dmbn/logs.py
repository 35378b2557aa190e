"""Logging for workflow steps: everything the library logs, and any error, goes to the job's log."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FORMAT = "%(asctime)s %(levelname)s %(message)s"


@contextmanager
def logging_to(path: str | Path) -> Iterator[logging.Logger]:
    """Log to ``path`` (and stderr) inside the block; an exception is logged before it propagates."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)]
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
