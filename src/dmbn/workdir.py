"""One live run per working directory: an operating-system file lock (``flock``) on
``.snakemake/dmbn-run.lock``, held for the life of the Snakemake process that runs jobs.

Why not Snakemake's own lock: Snakemake plans the jobs, and refuses the plan if any output is
marked incomplete, before it takes its lock (files under ``.snakemake/locks``). A second run
started beside a live one is therefore told that the live run's files are incomplete and advised
to ``--rerun-incomplete``, or, once the locks are removed with ``--unlock``, trains the same run
twice at once. This lock is taken while the Snakefile is read, before any planning, so the second
run is refused with a message naming the live one. The kernel drops it when the process ends,
however it ends (SIGKILL, a crashed workstation): no stale lock is ever left to remove.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_FILE = Path(".snakemake") / "dmbn-run.lock"
_held: dict[Path, int] = {}  # lock file -> descriptor, open for as long as this process lives


class DirectoryBusy(RuntimeError):
    """Another live process holds this working directory; the message names it."""


def hold(directory: str | Path) -> bool:
    """Take ``directory``'s run lock for the rest of this process's life; raises ``DirectoryBusy``
    if a live process holds it. False (nothing held) where the file system has no locks (some
    network file systems): the run goes on, as it would without this module."""
    path = (Path(directory) / LOCK_FILE).resolve()
    if path in _held:
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by job processes
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(descriptor)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise DirectoryBusy(busy_message(directory, _read(path))) from None
        return False  # ENOLCK, EOPNOTSUPP: no locking here
    os.ftruncate(descriptor, 0)
    os.write(descriptor, json.dumps(_this_process()).encode())
    _held[path] = descriptor
    return True


def holder(directory: str | Path) -> dict | None:
    """The live process that holds ``directory``'s run lock (pid, host, started, command), or
    None when none does (or this process holds it)."""
    path = (Path(directory) / LOCK_FILE).resolve()
    if path in _held or not path.exists():
        return None
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        return _read(path) if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    finally:
        os.close(descriptor)  # also releases the shared lock just taken
    return None


def busy_message(directory: str | Path, live: dict) -> str:
    return (f"another Snakemake run holds the working directory {Path(directory).resolve()}: "
            f"{describe(live)}. Wait for it to finish, or stop it (kill {live.get('pid', '<pid>')}); "
            f"do not run --unlock or --rerun-incomplete while it lives: they would let two runs "
            f"write the same files.")


def describe(live: dict) -> str:
    return (f"pid {live.get('pid', '?')} on {live.get('host', '?')}, started {live.get('started', '?')}, "
            f"`{live.get('command', '?')}`")


def _this_process() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(["snakemake", *sys.argv[1:]])}


def _read(path: Path) -> dict:
    """The holder's record; the holder writes it just after locking, so it may still be empty."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
