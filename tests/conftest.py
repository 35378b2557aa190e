"""Shared fixtures: small models, small data, and writers for the real on-disk formats."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from dmbn.data import RunData

ROOT = Path(__file__).resolve().parents[1]


def generator_commands(page: str) -> list[list[str]]:
    """The generator commands a page names in its splice markers (``docs/splice.py``), each as
    [script under docs/, *arguments]: the page is the one place that says which studies it reads."""
    import shlex
    import sys

    sys.path.insert(0, str(ROOT / "docs"))
    from splice import BLOCK

    commands = []
    for block in BLOCK.finditer((ROOT / "docs" / page).read_text()):
        python, script, *args = shlex.split(block["command"])
        assert python == "python" and script.startswith("docs/"), block["command"]
        commands.append([script.removeprefix("docs/"), *args])
    return commands


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """An IDX3 file (big-endian magic 0x00000803, dims), gzipped as the MNIST archives are."""
    header = struct.pack(">IIII", 0x803, *images.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes())


MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def write_mnist_like(folder: Path, n_train: int = 400, n_test: int = 100, seed: int = 0) -> dict[str, str]:
    """Four MNIST-format archives of class-dependent noise images; returns file -> md5."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, size=(n, 28, 28)) + labels[:, None, None] * 19
        write_idx_images(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_labels(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return {name: md5(folder / name) for name in MNIST_FILES}


def write_cifar_like(folder: Path, per_batch: int = 60, n_test: int = 60, classes: int = 10,
                     seed: int = 0) -> dict[str, str]:
    """A cifar-10-python.tar.gz in the real layout (pickled batches); returns file -> md5 for the
    archive and every batch."""
    rng = np.random.default_rng(seed)
    base = folder / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        labels = (np.arange(n) % classes).tolist()
        data = (rng.integers(0, 80, size=(n, 3072)) + np.repeat(labels, 3072).reshape(n, 3072) * 17)
        with open(base / name, "wb") as handle:
            pickle.dump({"data": data.astype(np.uint8), "labels": labels}, handle)
    with open(base / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(classes)]}, handle)
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(base, arcname="cifar-10-batches-py")
    sums = {name: md5(base / name) for name in names + ["batches.meta"]}
    sums["cifar-10-python.tar.gz"] = md5(archive)
    return sums


def tiny_data(n_train: int = 240, n_esm: int = 80, n_test: int = 80, features: int = 12,
              classes: int = 3, seed: int = 0) -> RunData:
    """Gaussian blobs shaped as 1-channel images [N, 1, 1, features]."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=g) * 2

    def sample(n: int):
        y = torch.arange(n) % classes
        x = centres[y] + torch.randn(n, features, generator=g)
        return x.view(n, 1, 1, features), y

    return RunData(*sample(n_train), *sample(n_esm), *sample(n_test), num_classes=classes)


@pytest.fixture
def data() -> RunData:
    return tiny_data()


# -- running the real workflow ----------------------------------------------------------------------

import copy  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import yaml  # noqa: E402

SNAKEFILE = ROOT / "Snakefile"


def base_config() -> dict:
    with open(ROOT / "config.yaml") as handle:
        return yaml.safe_load(handle)


def write_config(folder: Path, config: dict, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_command(workdir: Path, config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir),
            "--configfile", str(config), *args]


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True, timeout: int = 2400,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` with ``config`` (output captured)."""
    import os

    result = subprocess.run(snakemake_command(workdir, config, *args), capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


def planned_rules(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table."""
    counts: dict[str, int] = {}
    lines = (result.stdout + result.stderr).splitlines()
    if "Job stats:" not in lines:
        return counts
    for line in lines[lines.index("Job stats:") + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def quickstart_config(workdir: Path, epochs: int = 2) -> dict:
    config = copy.deepcopy(base_config())
    config["data_root"] = str(workdir / "resources" / "data")
    config["studies"]["quickstart"]["train"].update(epochs=epochs, precise_batches=3)
    return config


# -- a real HTTP mirror on loopback, for torchvision's downloader ------------------------------------

import contextlib  # noqa: E402
import functools  # noqa: E402
import threading  # noqa: E402
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def http_mirror(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (an ephemeral port); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(tmp_path):
    folder = tmp_path / "mirror"
    folder.mkdir()
    with http_mirror(folder) as url:
        yield folder, url


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (no browser download); skips where either is
    missing (`.ci/run` installs both where it can)."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[browser]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        except sync_api.Error as error:
            pytest.skip(f"chromium does not start under Playwright: {str(error).splitlines()[0]}")
        yield browser
        browser.close()
