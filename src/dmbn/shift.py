"""Distribution shift: corrupted test sets, generated once per data set and checked by md5 before
use, and a trained run's scores on them (issue #29).

On each corrupted set (``dmbn.corruptions``: a corruption at a severity of the official test set),
with the run's weights as they are (no training):

* every row of the run's ``statistics.pt`` (its fixed source statistics): accuracy and, from the
  same stacked pass, ESM_μ and ESM_σ per BN layer against the statistics the shifted set itself
  produces under that estimator (``dmbn.esm.measure_esm`` with the shifted set as the ESM set);
  these rows do not depend on the test order;
* each test-time rule of ``dmbn.names.SHIFT_RULES`` (``dmbn.test_time``) along each test stream
  (``dmbn.streams``), in test batches of the run's training batch size;
* the oracle: statistics recalibrated on the whole shifted set (``dmbn.esm.recalibrated_statistics``,
  AdaBN-like), whose ESM on that set is zero by construction.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from . import test_time
from .corruptions import corrupt
from .data import Processed, md5sum, standardise
from .esm import measure_esm, recalibrated_statistics
from .evaluate import predict, prediction_batch_sizes
from .names import ANY_STREAM, SHIFT_RULES, SHIFT_SOURCE, SHIFT_TEST_TIME
from .statistics import EstimatorStatistics, using_statistics
from .streams import stream

ORACLE = "target-recalibrated"  # the SHIFT_RULES row scored on the whole set, not along a stream
ACCURACY_COLUMNS = ["corruption", "severity", "stream", "family", "row", "accuracy"]
ESM_COLUMNS = ["corruption", "severity", "layer", "estimator", "esm_mu", "esm_sigma"]


class ShiftSetError(ValueError):
    """A corrupted set that cannot be used; the message names the file and what to do."""


# -- the corrupted sets ----------------------------------------------------------------------------

def corrupted_test_set(tensors: str | Path, corruption: str, severity: int, seed: int) -> np.ndarray:
    """The official test images of a data set's ``tensors.pt`` under ``corruption`` at
    ``severity``, uint8 ``[N, 28, 28]``; the same bytes for the same seed."""
    images = Processed.load(tensors).x_test
    if tuple(images.shape[1:]) != (1, 28, 28):
        raise ShiftSetError(f"{tensors}: test images of shape {tuple(images.shape[1:])}, but the corruptions are "
                            "written for 28x28 grayscale ([N, 1, 28, 28]); score a data set of that kind")
    return corrupt(images[:, 0].numpy(), corruption, severity, seed)


def write_set(images: np.ndarray, path: str | Path, md5_path: str | Path) -> str:
    """Save ``images`` (``.npy``, written to a partial file and renamed into place) and its md5
    beside it, in ``md5sum``'s format; returns the md5."""
    path, md5_path = Path(path), Path(md5_path)
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as handle:
        np.save(handle, np.ascontiguousarray(images), allow_pickle=False)
    digest = md5sum(partial)
    partial.replace(path)
    md5_path.write_text(f"{digest}  {path.name}\n")
    return digest


def recorded_md5(md5_path: str | Path) -> str:
    text = Path(md5_path).read_text().split()
    if not text or len(text[0]) != 32:
        raise ShiftSetError(f"{md5_path} holds no md5 ({' '.join(text)[:60]!r}). Delete it and the set beside it "
                            "and run snakemake again: the shift_set job writes both again for the first job that reads them.")
    return text[0]


def read_set(path: str | Path, md5_path: str | Path) -> np.ndarray:
    """A corrupted set, after checking its md5 against the one recorded when it was generated: a
    set that changed since is refused, never used."""
    expected, actual = recorded_md5(md5_path), md5sum(path)
    if actual != expected:
        raise ShiftSetError(f"{path}: md5 {actual} does not match {expected}, recorded in {md5_path} when the set "
                            f"was generated: the file changed since (damaged or edited), so it is not used. Delete "
                            f"both (rm {path} {md5_path}) and run snakemake again: the shift_set job generates "
                            "the set again, seeded, with the same bytes, for the first job that reads it (results "
                            "already made came from the recorded set).")
    return np.load(path, allow_pickle=False)


def manifest(md5_paths: Iterable[str | Path], sets: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per generated set: corruption, severity, file, md5 (from each set's md5 file)."""
    return pd.DataFrame([{**dict(s), "file": Path(p).with_suffix(".npy").name, "md5": recorded_md5(p)}
                         for p, s in zip(md5_paths, sets)], columns=["corruption", "severity", "file", "md5"])


def set_digest(images: np.ndarray) -> str:
    """md5 of the images' bytes (for tests: independent of the file format)."""
    return hashlib.md5(np.ascontiguousarray(images).tobytes()).hexdigest()


# -- scoring a run on one shifted set --------------------------------------------------------------

def shifted_inputs(images: np.ndarray, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 ``[N, 28, 28]`` as the run's standardised inputs ``[N, 1, 28, 28]``."""
    return standardise(torch.from_numpy(images)[:, None], mean, std)


def source_scores(model: nn.Module, statistics: EstimatorStatistics, x: Tensor, y: Tensor,
                  chunk: int) -> tuple[list[dict], list[dict]]:
    """Accuracy and per-layer ESM of every fixed-statistics row of the run, one stacked pass."""
    measured = measure_esm(model, {name: statistics.of(name) for name in statistics.names}, x, y, chunk)
    accuracy = [{"stream": ANY_STREAM, "family": SHIFT_SOURCE, "row": name, "accuracy": float(a)}
                for name, a in zip(measured.names, measured.accuracy.tolist())]
    esm = [{k: v for k, v in row.items() if k != "epoch"} for row in measured.rows(0)]
    return accuracy, esm


def oracle_accuracy(model: nn.Module, x: Tensor, y: Tensor, chunk: int) -> float:
    """Accuracy with every BN layer recalibrated on the whole shifted set (ESM 0 on it)."""
    mean, var = recalibrated_statistics(model, x, chunk)
    with using_statistics(model, mean, var):
        return float((predict(model, x) == y).double().mean())


def stream_accuracy(model: nn.Module, x: Tensor, y: Tensor, rule: str, order: np.ndarray,
                    batch_size: int | None, settings: Mapping[str, Any]) -> float:
    """Accuracy of a test-time rule with the shifted set arriving in ``order``, in test batches of
    ``batch_size`` (None: one batch)."""
    spec = SHIFT_RULES[rule]
    index = torch.from_numpy(order)
    batches = x[index].split(prediction_batch_sizes(len(index), batch_size))
    logits = test_time.stream_logits(model, batches, getattr(test_time, spec.cls),
                                     **{key: settings[key] for key in spec.settings})
    return float((logits.argmax(dim=1) == y[index]).double().mean())


def score_shifted_set(model: nn.Module, statistics: EstimatorStatistics, x: Tensor, y: Tensor,
                      settings: Mapping[str, Any], batch_size: int | None,
                      chunk: int = 2048) -> tuple[list[dict], list[dict]]:
    """Every row on one shifted set: (accuracy rows, ESM rows), without corruption and severity.
    ``settings``: the ``shift`` block (streams, alpha, rules, seed and the rules' own keys)."""
    accuracy, esm = source_scores(model, statistics, x, y, chunk)
    labels = y.cpu().numpy()
    for rule in settings["rules"]:
        if not SHIFT_RULES[rule].streams:
            accuracy.append({"stream": ANY_STREAM, "family": SHIFT_TEST_TIME, "row": rule,
                             "accuracy": oracle_accuracy(model, x, y, chunk)})
            continue
        for order in settings["streams"]:
            permutation = stream(order, labels, settings["seed"], settings["alpha"])
            accuracy.append({"stream": order, "family": SHIFT_TEST_TIME, "row": rule,
                             "accuracy": stream_accuracy(model, x, y, rule, permutation, batch_size, settings)})
    return accuracy, esm


def scored_samples(n: int, samples: int | None, seed: int) -> np.ndarray:
    """The test samples scored (``shift.test_samples``): a seeded subset in index order, the same
    for every corruption, severity and run; all of them for None."""
    if samples is None or samples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, n]).choice(n, size=samples, replace=False))


def score_corruption(model: nn.Module, statistics: EstimatorStatistics, sets: Mapping[int, np.ndarray],
                     y: Tensor, mean: Tensor, std: Tensor, corruption: str, settings: Mapping[str, Any],
                     batch_size: int | None, chunk: int = 2048) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``score_shifted_set`` at each severity of one corruption, on the scored samples
    (``scored_samples``): (accuracy, ESM) tables."""
    accuracy, esm = [], []
    index = scored_samples(len(y), settings.get("test_samples"), settings["seed"])
    y = y[torch.from_numpy(index).to(y.device)]
    for severity, images in sets.items():
        x = shifted_inputs(images[index], mean, std).to(y.device)
        rows, esm_rows = score_shifted_set(model, statistics, x, y, settings, batch_size, chunk)
        where = {"corruption": corruption, "severity": severity}
        accuracy += [{**where, **row} for row in rows]
        esm += [{**where, **row} for row in esm_rows]
    return pd.DataFrame(accuracy, columns=ACCURACY_COLUMNS), pd.DataFrame(esm, columns=ESM_COLUMNS)


def esm_mu_by_layer(esm: pd.DataFrame) -> pd.DataFrame:
    """A study's shift ESM table (``ESM_COLUMNS`` with the run's labels) as ESM_μ per BN layer,
    one column ``l<k>`` a layer, one row per run, set and estimator: the summary that is
    published (the long table, ESM_σ too, stays with the study's results)."""
    keys = [c for c in esm.columns if c not in ("layer", "esm_mu", "esm_sigma")]
    wide = esm.pivot_table(index=keys, columns="layer", values="esm_mu", sort=False)
    wide.columns = [f"l{layer}" for layer in wide.columns]
    return wide.reset_index()
