"""glibc's allocator settings for the jobs' processes.

A convolutional network's forward pass frees and re-allocates activations of many megabytes per
layer. With glibc's defaults each of those comes from a fresh ``mmap`` and goes back to the OS on
``free``, so every pass pays page faults again. Raising the mmap threshold and never trimming the
heap keeps freed activations for the next pass: a ResNet's eval forward on this project's CPU took
~1.5x less CPU time (``benchmarks/bench_allocator.py``; ``benchmarks/RESULTS.md``, section 10),
with the same numbers (the allocator does not touch arithmetic). glibc reads these variables when
a process starts, so they are exported for the jobs, which are processes of their own; a value the
user set wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

GLIBC_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",  # 4 GiB: activations come from the heap, not fresh mmaps
    "MALLOC_TRIM_THRESHOLD_": "68719476736",  # 64 GiB: freed memory stays for the next pass
}


def export_allocator_settings(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Put ``GLIBC_MALLOC`` into ``environ`` where the user has not set a value; returns the
    settings in force."""
    for name, value in GLIBC_MALLOC.items():
        environ.setdefault(name, value)
    return allocator_settings(environ)


def allocator_settings(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """The allocator variables set in ``environ`` (a job logs them: timings depend on them)."""
    return {name: environ[name] for name in GLIBC_MALLOC if name in environ}
