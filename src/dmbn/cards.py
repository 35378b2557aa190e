"""Run cards: what produced a run — code version, software, device, threads and times.

A run may be trained in several segments (interrupted, resumed); each segment records the commit
it ran at, so a card shows whether one code version produced the whole trajectory.
"""

from __future__ import annotations

import platform
import socket
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The git commit of the source tree this ``dmbn`` was imported from ("unknown" outside git)
    and whether tracked files differ from it."""
    source = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True,
                                  timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "commit_dirty": bool(dirty) if commit else None}


@lru_cache(maxsize=1)
def cpu_kind() -> str:
    """The processor and the vector instructions torch's CPU kernels use, e.g.
    "AMD EPYC (family 23, model 1); torch kernels AVX2".

    Recorded because the same code, seeds, threads and library versions give bitwise-equal
    results only on the same kind of processor: a kernel chosen for another CPU sums in another
    order, and mini-batch training amplifies the last-bit difference over its epochs."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as info:  # Linux; elsewhere platform.processor() below
            for line in info:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return f"{name}; torch kernels {torch.backends.cpu.get_cpu_capability()}"


def environment(device: str) -> dict[str, Any]:
    """Versions, machine and threads of the current process."""
    return {"dmbn_version": _version("dmbn"), **code_version(),
            "python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": _version("torchvision"), "snakemake": _version("snakemake"),
            # the data pipeline's numerics outside torch (decoding, stratified splits)
            "numpy": _version("numpy"), "scikit-learn": _version("scikit-learn"),
            "device": device if not device.startswith("cuda") else
            f"{device} ({torch.cuda.get_device_name(torch.device(device))})",
            "cpu": cpu_kind(),
            "threads": torch.get_num_threads(), "hostname": socket.gethostname(),
            "platform": platform.platform()}


def segment(first_epoch: int, last_epoch: int, started: str, wall_seconds: float) -> dict[str, Any]:
    """One stretch of training by one process."""
    return {"commit": code_version()["commit"], "started": started, "finished": now(),
            "first_epoch": first_epoch, "last_epoch": last_epoch,
            "wall_seconds": round(wall_seconds, 3)}


def run_card(segments: list[dict[str, Any]], device: str) -> dict[str, Any]:
    """The card of a finished run: this process's environment and every segment's times."""
    return {**environment(device),
            "started": segments[0]["started"] if segments else now(),
            "finished": segments[-1]["finished"] if segments else now(),
            "wall_seconds": round(sum(s["wall_seconds"] for s in segments), 3),
            "epochs_run": segments[-1]["last_epoch"] if segments else 0,
            "resumed_from_epoch": segments[-1]["first_epoch"] if segments else 0,
            "segments": segments}
