"""Data: fetching archives (local copies first), parsing them with torchvision, splits and tensors.

Raw archives live under ``<data_root>/<dataset>/``; torchvision's own dataset classes parse them.
Processed data are compact uint8 tensors ``[N, C, H, W]`` with int64 labels, decoded once.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import shutil
import urllib.error
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .names import REGIMES, is_regime
from .files import load_pt

log = logging.getLogger("dmbn")

# torchvision and scikit-learn are imported where they are needed: training jobs need neither,
# and each costs seconds of start-up in every job.

# md5 of the *uncompressed* IDX files. Debian's dataset-fashion-mnist and the offline MNIST copy
# re-gzip the original archives (new gzip headers, so other archive md5s) around byte-identical
# payloads.
IDX_PAYLOAD_MD5 = {
    "MNIST": {  # ../shared/data/mnist holds these payloads re-gzipped (its README)
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}


class DataError(RuntimeError):
    """A data set is missing, corrupt or of the wrong shape; the message names the file."""


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- which files a data set needs ----------------------------------------------------------------

def dataset_class(spec: dict[str, Any]) -> type:
    """The torchvision class for a data set's config ``spec``, with its mirrors and checksums
    overridden where the spec gives them (same class name, so the same folder layout)."""
    from torchvision import datasets as tv

    base = getattr(tv, spec["torchvision"])
    overrides: dict[str, Any] = {}
    md5 = spec.get("md5")
    if _is_mnist_family(base):
        if "mirrors" in spec:
            overrides["mirrors"] = [m if m.endswith("/") else m + "/" for m in spec["mirrors"]]
        if md5:
            overrides["resources"] = [(name, md5[name]) for name, _ in base.resources]
    else:
        if "mirrors" in spec:
            overrides["url"] = spec["mirrors"][0].rstrip("/") + "/" + base.filename
        if md5:
            overrides["tgz_md5"] = md5[base.filename]
            overrides["train_list"] = [[name, md5[name]] for name, _ in base.train_list]
            overrides["test_list"] = [[name, md5[name]] for name, _ in base.test_list]
            overrides["meta"] = {**base.meta, "md5": md5[base.meta["filename"]]}
    return type(base.__name__, (base,), overrides) if overrides else base


def _is_mnist_family(cls: type) -> bool:
    from torchvision.datasets import MNIST

    return issubclass(cls, MNIST)


def archives(cls: type) -> list[tuple[str, str]]:
    """(file name, md5) of the archives a torchvision class downloads."""
    if _is_mnist_family(cls):
        return [(name, md5) for name, md5 in cls.resources]
    return [(cls.filename, cls.tgz_md5)]


def raw_dir(cls: type, root: Path) -> Path:
    return root / cls.__name__ / "raw" if _is_mnist_family(cls) else root


def _unpacked(cls: type, root: Path, archive: str) -> bool:
    """Whether the files torchvision parses are already there."""
    if _is_mnist_family(cls):
        return (raw_dir(cls, root) / archive.removesuffix(".gz")).exists()
    batches = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return all((root / cls.base_folder / name).exists() for name in batches)


def _unpack(cls: type, root: Path, archive: str) -> None:
    from torchvision.datasets.utils import extract_archive

    folder = raw_dir(cls, root)
    if archive.endswith(".gz") and not archive.endswith(".tar.gz"):  # IDX: all or nothing
        _gunzip(folder / archive, folder / archive.removesuffix(".gz"))
    else:
        extract_archive(str(folder / archive), str(folder))


def _archive_ok(path: Path, md5: str) -> bool:
    return path.is_file() and md5sum(path) == md5


def _install_local_copy(cls: type, root: Path, archive: str, md5: str, sources: list[str],
                        rejected: list[str]) -> bool:
    """Copy ``archive`` from the first local source whose copy's md5 matches, or (IDX) whose
    payload's md5 matches. A copy that is empty, unreadable, corrupt or of other content is
    logged with the reason, added to ``rejected`` and skipped: the next source is tried."""
    for source in sources:
        candidate = Path(source) / archive
        if not candidate.is_file():
            continue
        try:
            if candidate.stat().st_size == 0:
                reason = "the file is empty (0 bytes)"
            elif installed := _install_copy(cls, root, archive, md5, candidate):
                log.info("%s %s from %s", installed, archive, source)
                return True
            else:
                reason = "its checksum matches neither the archive nor its payload"
        except (OSError, EOFError, zlib.error) as error:
            reason = _read_failure(error)
        rejected.append(f"{candidate}: {reason}")
        log.warning("ignored %s: %s; trying the next source", candidate, reason)
    return False


def _install_copy(cls: type, root: Path, archive: str, md5: str, candidate: Path) -> str | None:
    """Install one local copy if it is the right file (how, in words); None when it is not."""
    folder = raw_dir(cls, root)
    folder.mkdir(parents=True, exist_ok=True)
    if _archive_ok(candidate, md5):
        _copy_atomic(candidate, folder / archive)
        return "copied (md5 ok)"
    payload_md5 = IDX_PAYLOAD_MD5.get(cls.__name__, {}).get(archive.removesuffix(".gz"))
    if payload_md5 and archive.endswith(".gz"):
        target = folder / archive.removesuffix(".gz")
        _gunzip(candidate, target)
        if md5sum(target) == payload_md5:
            return "unpacked (payload md5 ok)"
        target.unlink()
    return None


def _read_failure(error: Exception) -> str:
    """Why a local copy could not be read, in words, with the underlying error."""
    if isinstance(error, EOFError):
        what = "truncated"
    elif isinstance(error, (gzip.BadGzipFile, zlib.error)):
        what = "corrupt"
    else:
        what = "unreadable"
    name = "zlib.error" if isinstance(error, zlib.error) else type(error).__name__
    return f"{what} ({name}: {error})"


def _copy_atomic(source: Path, target: Path) -> None:
    partial = _partial(target)
    try:
        shutil.copyfile(source, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _gunzip(source: Path, target: Path) -> None:
    partial = _partial(target)
    try:
        with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)  # after a failure: no partial file stays behind


def _partial(target: Path) -> Path:
    """A temporary name beside ``target``, unique to this process."""
    return target.with_name(f"{target.name}.{os.getpid()}.part")


def fetch(name: str, spec: dict[str, Any], root: str | Path, sources: list[str],
          download: bool = True) -> Path:
    """Put data set ``name``'s archives under ``root``: local copies first, then the network.

    Raises ``DataError`` listing every missing file, and how to provide it, when neither works.
    """
    root = Path(root)
    if spec.get("torchvision") is None:
        return root  # digits ships with scikit-learn
    cls = dataset_class(spec)
    missing, rejected = [], []
    for archive, md5 in archives(cls):
        if _unpacked(cls, root, archive):
            continue
        if (_archive_ok(raw_dir(cls, root) / archive, md5)
                or _install_local_copy(cls, root, archive, md5, sources, rejected)):
            if not _unpacked(cls, root, archive):
                _unpack(cls, root, archive)
            continue
        missing.append((archive, md5))
    if missing and download:
        folder = raw_dir(cls, root)
        present = {a for a, _ in missing if (folder / a).exists()}
        try:
            for train in (True, False):
                cls(str(root), train=train, download=True)
            missing = []
        except (urllib.error.URLError, OSError, RuntimeError) as error:
            log.warning("download of %s failed: %s", name, error)
            for archive, md5 in missing:  # a cut-off or corrupt download is not kept
                path = folder / archive
                if archive not in present and path.exists() and not _archive_ok(path, md5):
                    path.unlink()
                    log.warning("removed the failed download %s", path)
    if missing:
        folder = raw_dir(cls, root)
        listing = "\n".join(f"  {a}  (md5 {m})" for a, m in missing)
        ignored = "".join(f"\n  ignored {reason}" for reason in rejected)
        # a source folder that is not there is the usual cause offline (an uninstalled package,
        # a relative path from another working directory): name it, the config says what it is
        absent = "".join(f"\n  no such folder (local_sources): {source}" for source in sources if not Path(source).is_dir())
        raise DataError(
            f"data set {name!r}: these files are missing and could not be downloaded:\n{listing}\n"
            f"Copy them into {folder}/ or into a folder listed under `local_sources` in the config, "
            f"or run the download rule where the internet is reachable, and run again.{ignored}{absent}")
    return root


# -- parsing to tensors --------------------------------------------------------------------------

@dataclass
class Processed:
    """A whole data set as uint8 images ``[N, C, H, W]`` and int64 labels, train and test parts."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    def save(self, path: str | Path) -> None:
        partial = _partial(Path(path))
        try:
            torch.save({"x_train": self.x_train, "y_train": self.y_train, "x_test": self.x_test,
                        "y_test": self.y_test, "num_classes": self.num_classes}, partial)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path) -> "Processed":
        return cls(**load_pt(path))


def parse(name: str, spec: dict[str, Any], root: str | Path) -> Processed:
    """Decode a fetched data set with torchvision (or scikit-learn for ``digits``)."""
    if spec.get("torchvision") is None:
        return _digits(spec.get("test_fraction", 0.3))
    cls = dataset_class(spec)
    try:
        parts = [cls(str(root), train=train, download=False) for train in (True, False)]
    except Exception as error:  # torchvision raises assorted types, naming no file
        culprit = _bad_file(cls, Path(root)) or f"under {raw_dir(cls, Path(root))}: {error}"
        # The whole folder: it holds the download rule's marker (fetched.json) too, so that the
        # next run fetches again.
        raise DataError(f"data set {name!r}: {culprit}. Replace the file, or delete the folder "
                        f"{root} to fetch fresh copies, and run again.") from error
    tensors = [_images(part, name) for part in parts]
    num_classes = len(parts[0].classes)
    return Processed(*tensors[0], *tensors[1], num_classes=num_classes)


def _bad_file(cls: type, root: Path) -> str | None:
    """Which parsed file is broken, and how: read each one alone (only after a failure)."""
    if _is_mnist_family(cls):
        from torchvision.datasets.mnist import read_image_file, read_label_file

        for path in sorted(raw_dir(cls, root).glob("*-ubyte")):
            reader = read_label_file if "labels" in path.name else read_image_file
            try:
                reader(str(path))
            except Exception as error:
                return f"{path} is not a valid IDX file ({error})"
        return None
    for name, _ in cls.train_list + cls.test_list:
        path = root / cls.base_folder / name
        try:
            with open(path, "rb") as handle:
                entry = pickle.load(handle, encoding="latin1")  # the CIFAR format is a pickle
            shape = np.asarray(entry["data"]).shape
        except Exception as error:
            return f"{path} is not a readable CIFAR batch ({error})"
        if len(shape) != 2 or shape[1] != 3 * 32 * 32:
            return f"{path} holds images of shape {shape}, expected [N, 3072]"
    return None


def _images(dataset: Any, name: str) -> tuple[Tensor, Tensor]:
    data = dataset.data
    if isinstance(data, np.ndarray):  # CIFAR: [N, H, W, C]
        if data.ndim != 4 or data.shape[3] != 3:
            raise DataError(f"data set {name!r}: CIFAR images of shape {data.shape}, expected [N, 32, 32, 3]")
        images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    else:  # MNIST family: [N, H, W]
        images = data.unsqueeze(1)
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    if len(labels) != len(images):
        raise DataError(f"data set {name!r}: {len(images)} images but {len(labels)} labels")
    return images, labels


def _digits(test_fraction: float) -> Processed:
    """scikit-learn's 8x8 digits (values 0..16) with a fixed stratified 'official' test part."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(np.rint(bunch.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                   stratify=bunch.target, random_state=0)
    return Processed(images[train], labels[train], images[test], labels[test], num_classes=10)


# -- splits, regimes and what a run trains on ----------------------------------------------------------

def stratified_split(labels: Tensor, validation_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded stratified (train, validation) indices; validation is the mini-batch ESM set."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train, val = train_test_split(index, test_size=validation_fraction, stratify=labels.numpy(),
                                  random_state=seed)
    return torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(val))


@dataclass
class RunData:
    """Float tensors a run needs, already standardised: train, ESM set and test set."""

    x_train: Tensor
    y_train: Tensor
    x_esm: Tensor
    y_esm: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """A content hash of every tensor (so of the data set, the split and the regime)."""
        digest = hashlib.sha256()
        for name, value in sorted(self.__dict__.items()):
            digest.update(name.encode())
            if isinstance(value, Tensor):
                digest.update(str((value.dtype, tuple(value.shape))).encode())
                digest.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
            else:
                digest.update(repr(value).encode())
        return digest.hexdigest()

    def to(self, device: str | torch.device) -> "RunData":
        fields = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.__dict__.items()}
        return RunData(**fields)


def regime_data(data: Processed, regime: str, train_index: Tensor, esm_index: Tensor) -> RunData:
    """The regimes (``dmbn.names.REGIMES``): ``mini``, ``mini-b<B>`` and ``full-heldout`` train
    on the 80 % split, measure ESM on the 20 % and test on the official test set; the thesis's
    ``full`` trains, measures ESM and tests on the official test set. Inputs are standardised with
    the moments of the training part."""
    if not is_regime(regime):
        raise ValueError(f"unknown regime {regime!r}; choose one of {list(REGIMES)} or mini-b<B>")
    if regime == "full":
        x_train, y_train, x_esm, y_esm = data.x_test, data.y_test, data.x_test, data.y_test
    else:
        x_train, y_train = data.x_train[train_index], data.y_train[train_index]
        x_esm, y_esm = data.x_train[esm_index], data.y_train[esm_index]
    mean, std = training_moments(data, regime, train_index)
    x_train, x_esm, x_test = (standardise(x, mean, std) for x in (x_train, x_esm, data.x_test))
    return RunData(x_train, y_train, x_esm, y_esm, x_test, data.y_test, data.num_classes)


def training_moments(data: Processed, regime: str, train_index: Tensor) -> tuple[Tensor, Tensor]:
    """A regime's input standardisation: the per-channel moments of the part it trains on (the
    official test set for the thesis's ``full``); every set a run sees, shifted ones too, is
    standardised with them."""
    return channel_moments(data.x_test if regime == "full" else data.x_train[train_index])


def load_run_data(tensors: str | Path, split: str | Path, regime: str) -> RunData:
    """A run's data from the workflow's files: processed tensors and split indices."""
    indices = load_pt(split)
    return regime_data(Processed.load(tensors), regime, indices["train"], indices["validation"])


def channel_moments(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of uint8 images scaled to [0, 1]."""
    x = images.double() / 255
    dims = [0, 2, 3]
    return x.mean(dims).float(), x.std(dims).clamp_min(1e-6).float()


def standardise(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return (images.float() / 255 - mean[:, None, None]) / std[:, None, None]


def augmentation_draws(n: int, generator: torch.Generator, padding: int = 4) -> Tensor:
    """An epoch's random crop offsets (row, column, each in ``[0, 2 * padding]``) and horizontal
    flips (0 or 1) for ``n`` samples, as ``[n, 3]`` integers. Drawn on the CPU once per epoch (so
    the run's generator is the only source of randomness) and moved to the device in one copy,
    so that no training step waits on a host-to-device transfer."""
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = (torch.rand(n, generator=generator) < 0.5).long()
    return torch.cat([offsets, flips[:, None]], dim=1)


def augment(x: Tensor, draws: Tensor, padding: int = 4) -> Tensor:
    """Random crop with zero padding and random horizontal flip of ``x`` ``[n, C, H, W]``, one row
    of ``augmentation_draws`` per sample, vectorised on x's device."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    rows = (draws[:, 0, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = draws[:, 1, None] + torch.arange(w, device=x.device)
    cols = torch.where(draws[:, 2, None].bool(), cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]
