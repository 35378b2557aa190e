"""One training run: SGD over one trajectory, the estimator bank riding along, ESM logged per epoch.

A run checkpoints after every epoch (atomically) and resumes from the last complete epoch with
bitwise-identical results. Its files (see ``write_run``):

* ``esm.csv``      epoch, layer, estimator, esm_mu, esm_sigma  (layers: 1-based BN index)
* ``betas.csv``    epoch, layer, estimator, beta                (β* per layer and epoch of DMBN
                                                                and its variants)
* ``history.csv``  epoch, train_loss, train_accuracy, esm_accuracy_<estimator>...  (wide: one
                   ESM-set accuracy column per estimator; precise/recalibrated exist only at the
                   last epoch; test-batch, which has no fixed statistics, has none, nor rows in
                   esm.csv: its ESM is 0 by definition)
* ``layers.csv``   layer, name, channels, position  (position: 1-based index among all norm
                   layers, batch-free ones included, i.e. the hidden layer of an MLP)
* ``statistics.pt`` final statistics of every estimator, ``model.pt`` final weights
* ``card.json``    the run card: code version, software, device, threads, times (``dmbn.cards``)
* ``precise_spread.csv`` layer, batch_size, batches, var_of_batch_means, pooled_var, ratio (only
                   with ``precise``: per BN layer, channel-averaged, the variance of the batch means
                   over PreciseBN's batches against pooled variance / B; ``dmbn.estimators.BatchAverages``.
                   Not a declared output of the workflow's train rule, so older runs stay valid)

Checkpoints carry the run's identity (``dmbn.checkpoints``): a changed setting, model or data
never resumes an old trajectory, and a checkpoint set aside by such a change is resumed once the
settings return to it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import cards, checkpoints, faults
from .checkpoints import save_atomic
from .data import RunData, augment, augmentation_draws
from .esm import ESM_CHUNK, measure_esm
from .bank import EstimatorBank, OwnMomentum, StatisticsHolder
from .estimators import PreciseBN, TrainingContext
from .names import DEFAULT_ESTIMATORS, REFERENCE_BATCH_SIZE, RUN_CARD, STATIC_BETAS
from .runs import BETA_COLUMNS
from .models import norm_layers
from .statistics import EstimatorStatistics, batchnorm_layers

log = logging.getLogger("dmbn")
PRECISE_SPREAD = "precise_spread.csv"
PRECISE_SPREAD_COLUMNS = ["layer", "batch_size", "batches", "var_of_batch_means", "pooled_var", "ratio"]


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Hyper-parameters of one run. ``batch_size=None`` trains full-batch."""

    epochs: int = 50
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int | None = 100
    seed: int = 1
    betas: tuple[float, ...] = STATIC_BETAS
    estimators: tuple[str, ...] = DEFAULT_ESTIMATORS
    reference_batch_size: int = REFERENCE_BATCH_SIZE  # horizon-matched EMAs: κ = batch size / this
    precise_batches: int = 200
    esm_chunk: int = ESM_CHUNK
    esm_samples: int | None = None  # the ESM set subsampled to this many (seeded, fixed); None: all
    augment: bool = False
    device: str = "cpu"
    amp: bool = False            # bf16 autocast for the training step (CUDA only; BN stays float32)
    channels_last: bool = False  # NHWC memory format for convolutional models (any device: faster
                                 # on CPU too, benchmarks/RESULTS.md section 7)
    compile: bool = False        # torch.compile the training step's model (ESM runs eagerly)
    separate_beta: float | None = None  # the thesis's protocol: BN momentum β, no bank

    def settings(self) -> dict:
        """The settings as plain data (tuples as lists), as checkpoints store them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class RunResult:
    esm: pd.DataFrame
    betas: pd.DataFrame
    history: pd.DataFrame
    statistics: EstimatorStatistics
    model: nn.Module
    layers: pd.DataFrame = field(default_factory=pd.DataFrame)
    card: dict = field(default_factory=dict)
    precise_spread: pd.DataFrame | None = None  # only with the ``precise`` estimator


# -- helpers -------------------------------------------------------------------------------------

def make_deterministic() -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def epoch_batches(n: int, batch_size: int | None, generator: torch.Generator,
                  device: torch.device) -> list[Tensor]:
    """A shuffled epoch as index batches; a trailing batch of one sample (BN cannot train on it)
    is dropped."""
    order = torch.randperm(n, generator=generator).to(device)
    batches = list(order.split(batch_size or n))
    return batches[:-1] if len(batches) > 1 and len(batches[-1]) < 2 else batches


def layer_table(model: nn.Module) -> pd.DataFrame:
    """BN layers (1-based, as in the logs) with their module names and norm-layer positions."""
    positions = {name: i + 1 for i, (name, _) in enumerate(norm_layers(model))}
    return pd.DataFrame([{"layer": i + 1, "name": name, "channels": bn.num_features,
                          "position": positions[name]}
                         for i, (name, bn) in enumerate(batchnorm_layers(model))])


def esm_subset(data: RunData, samples: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """The ESM set a run measures on: all of it, or ``samples`` of it drawn once from the run's
    seed (in their original order) and kept for every epoch, so that ESM_μ, β* and the recalibrated
    oracle (ESM 0 on the same samples) all see one set. Where the ESM over the whole set costs more
    than the training (a convolutional network on 12,000 samples), this bounds it."""
    if samples is None or samples >= len(data.y_esm):
        return data.x_esm, data.y_esm
    index = torch.randperm(len(data.y_esm), generator=torch.Generator().manual_seed(seed + 2))[:samples]
    index = index.sort().values.to(data.y_esm.device)
    return data.x_esm[index], data.y_esm[index]


# -- the run -------------------------------------------------------------------------------------

class Run:
    """State of one training run: model, optimiser, the estimators' holder (``statistics_holder``:
    the bank, or BN's own buffers under the thesis's protocol), RNG and the logs so far."""

    def __init__(self, model: nn.Module, data: RunData, cfg: TrainConfig) -> None:
        self.cfg, self.data = cfg, data
        self.device = torch.device(cfg.device)
        on_gpu = self.device.type == "cuda"
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and on_gpu)
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.holder = statistics_holder(model, cfg, len(data.y_train))
        self.x_esm, self.y_esm = esm_subset(data, cfg.esm_samples, cfg.seed)
        self.identity = checkpoints.identity(cfg.settings(), model, data.fingerprint())
        self.segments: list[dict] = []  # earlier processes' stretches of this run (run card)
        self._segment: tuple[int, str, float] | None = None  # this process's: first epoch, start
        self.epoch = 0
        self.esm_rows: list[dict] = []
        self.beta_rows: list[dict] = []
        self.history_rows: list[dict] = []

    # checkpoints
    def state_dict(self) -> dict:
        return {"identity": self.identity, "segments": self.all_segments(), "epoch": self.epoch,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "bank": self.holder.state_dict(),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "esm": self.esm_rows, "betas": self.beta_rows, "history": self.history_rows}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.holder.load_state_dict(state["bank"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = state["epoch"]
        self.segments = list(state.get("segments", []))
        self.esm_rows, self.beta_rows, self.history_rows = state["esm"], state["betas"], state["history"]
        for row in self.beta_rows:  # checkpoints from before β* named its kind: DMBN's
            row.setdefault("estimator", "dmbn")
        if self.epoch < self.cfg.epochs:
            self._reopen()

    def begin_segment(self) -> None:
        """This process starts training (after any resume): its stretch goes on the run card."""
        self._segment = (self.epoch, cards.now(), time.perf_counter())

    def all_segments(self) -> list[dict]:
        if self._segment is None:
            return list(self.segments)
        first_epoch, started, clock = self._segment
        return self.segments + [cards.segment(first_epoch, self.epoch, started, time.perf_counter() - clock)]

    def _reopen(self) -> None:
        """A finished run resumed for more epochs: its end-of-training estimators (PreciseBN,
        recalibrated) belong to the old last epoch and are measured again at the new one."""
        finals = self.holder.reopen()
        self.esm_rows = [row for row in self.esm_rows if row["estimator"] not in finals]
        for row in self.history_rows:
            for name in finals:
                row.pop(f"esm_accuracy_{name}", None)

    def resume(self, checkpoint: Path) -> bool:
        """Continue from the furthest checkpoint made with this run's settings (``dmbn.checkpoints``):
        ``checkpoint`` itself, or one set aside earlier, which is moved back into its place; True
        when resumed. ``checkpoint``, if it is not the one resumed, is set aside: under its identity
        when that is known, so that a run with its settings finds it again; else as stale."""
        own, own_reason, own_target = self._own_checkpoint(checkpoint)
        aside = self._set_aside_match(checkpoint, better_than=own["epoch"] if own is not None else -1)
        if aside is not None and own is not None:  # the same settings, but further along
            own_reason = (f"set-aside checkpoint {aside[0]}, made with the same settings, is further "
                          f"along ({aside[1]['epoch']} epochs against {own['epoch']})")
        if own_reason is not None:
            then = "starting over" if aside is None else f"resuming from set-aside checkpoint {aside[0]}"
            checkpoints.set_aside(checkpoint, own_reason, own_target, then)
        if aside is not None:
            aside[0].replace(checkpoint)
            log.info("resuming from set-aside checkpoint %s, made with the same settings: moved it back "
                     "to %s", aside[0], checkpoint)
            own = aside[1]
        if own is None:
            return False
        self.load_state_dict(own)
        log.info("resumed from %s after epoch %d", checkpoint, self.epoch)
        return True

    def _own_checkpoint(self, checkpoint: Path) -> tuple[dict | None, str | None, Path | None]:
        """``checkpoint``'s state if this run may resume it; else why not and where to set it aside
        (None: under a stale name, as its identity is unknown); all None if there is none."""
        if not checkpoint.exists():
            return None, None, None
        state, unreadable = checkpoints.read(checkpoint, self.device)
        if state is None:
            return None, unreadable, None
        reason = self._mismatch(state)
        target = None
        if "identity" in state:
            digest = checkpoints.identity_hash(state["identity"], TrainConfig().settings())
            target = checkpoints.aside_path(checkpoint, digest, state["epoch"])
        return (state, None, target) if reason is None else (None, reason, target)

    def _set_aside_match(self, checkpoint: Path, better_than: int) -> tuple[Path, dict] | None:
        """The set-aside checkpoint of this run's identity with the most epochs, more than
        ``better_than`` and at most those asked for (RESUMABLE), and its state; None if none."""
        digest = checkpoints.identity_hash(self.identity, TrainConfig().settings())
        found = checkpoints.set_aside_checkpoints(checkpoint, digest)
        for path, epochs in sorted(found.items(), key=lambda item: -item[1]):
            if not better_than < epochs <= self.cfg.epochs:
                continue
            state, unreadable = checkpoints.read(path, self.device)
            if state is None:
                checkpoints.set_aside(path, unreadable, then="looking further")
                continue
            reason = self._mismatch(state)
            if reason is None and state["epoch"] == epochs:
                return path, state
            log.warning("set-aside checkpoint %s is not what its name says (%s); left as it is", path,
                        reason or f"it holds {state['epoch']} epochs")
        return None

    def _mismatch(self, state: dict) -> str | None:
        """Why ``state`` must not be resumed by this run, or None."""
        if "identity" not in state:
            return "it was written by an older dmbn that did not record the run's identity"
        diff = checkpoints.differences(state["identity"], self.identity, TrainConfig().settings())
        if diff:
            return f"it belongs to another run (different {', '.join(diff)})"
        if state["epoch"] > self.cfg.epochs:
            return f"it holds {state['epoch']} epochs, more than the {self.cfg.epochs} asked for"
        return None

    # training
    def train_epoch(self) -> tuple[float, float]:
        """One pass over the training set; returns mean loss and accuracy."""
        data, model = self.data, self.model
        batches = epoch_batches(len(data.y_train), self.cfg.batch_size, self.generator, self.device)
        losses = torch.zeros(len(batches), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        draws = augmentation_draws(len(data.y_train), self.generator).to(self.device) if self.cfg.augment else None
        model.train()
        self.holder.start_epoch()
        for step, index in enumerate(batches):
            x, y = data.x_train[index], data.y_train[index]
            if draws is not None:
                x = augment(x, draws[index])
            with self.autocast:
                logits = self.forward(x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x)
                loss = F.cross_entropy(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.holder.observe()
            losses[step] = loss.detach()
            correct += (logits.argmax(dim=1) == y).sum()
            if step == len(batches) // 2:
                faults.reached("step", self.epoch + 1)
        self._check_finite(losses)
        seen = sum(len(b) for b in batches)
        return float(losses.mean()), float(correct) / seen

    def next_epoch(self) -> dict:
        """Train one epoch, then log every estimator's ESM; returns the epoch's history row."""
        train_loss, train_accuracy = self.train_epoch()
        self.epoch += 1
        row = {"epoch": self.epoch, "train_loss": train_loss, "train_accuracy": train_accuracy}
        row.update(self.log_epoch_estimators())
        self.history_rows.append(row)
        return row

    def _check_finite(self, losses: Tensor) -> None:
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            step = int(bad[0])
            raise DivergenceError(f"training diverged at epoch {self.epoch + 1}, step {step + 1}: "
                                  f"loss = {float(losses[step])}")

    # estimators and ESM
    def measure(self, estimators: dict[str, tuple[Tensor, Tensor]]):
        faults.reached("esm", self.epoch)
        return measure_esm(self.model, estimators, self.x_esm, self.y_esm, self.cfg.esm_chunk)

    def log_epoch_estimators(self) -> dict[str, float]:
        """ESM of every estimator at this epoch's end, one stacked pass per stage: the estimators
        ready now (DMBN's candidates among them), then those that choose β* from the candidates'
        ESM, then, after the last epoch, those of the final weights."""
        holder = self.holder
        first = self.measure(holder.stage_statistics("epoch"))
        measurements = [first]
        candidates = first.select(holder.candidates)
        holder.finish_epoch(candidates.esm_mu, candidates.esm_sigma)
        self.beta_rows += [{"epoch": self.epoch, "layer": layer + 1, "estimator": kind, "beta": beta}
                           for kind, beta_star in holder.choices.items()
                           for layer, beta in enumerate(beta_star.tolist())]
        stages = ["chosen"]
        if self.epoch == self.cfg.epochs:
            holder.finish_training(self.training_context())
            stages.append("final")
        for stage in stages:
            estimators = holder.stage_statistics(stage)
            if estimators:
                measurements.append(self.measure(estimators))
        accuracy = {}
        for m in measurements:
            self.esm_rows += m.rows(self.epoch)
            accuracy.update({f"esm_accuracy_{n}": a for n, a in zip(m.names, m.accuracy.tolist())})
        return accuracy

    def training_context(self) -> TrainingContext:
        """What the estimators of the final weights measure with (PreciseBN, recalibrated)."""
        def batches():
            return self._precise_batches(torch.Generator().manual_seed(self.cfg.seed + 1))
        return TrainingContext(self.model, batches, self.x_esm, self.cfg.esm_chunk)

    def _precise_batches(self, generator: torch.Generator):
        # full batch: every batch is the whole training set, so one says all that N would
        remaining = self.cfg.precise_batches if self.cfg.batch_size else 1
        while remaining > 0:
            for index in epoch_batches(len(self.data.y_train), self.cfg.batch_size, generator, self.device):
                if remaining == 0:
                    return
                remaining -= 1
                yield self.data.x_train[index]

    def final_statistics(self) -> EstimatorStatistics:
        return self.holder.export()

    def result(self) -> RunResult:
        return RunResult(pd.DataFrame(self.esm_rows), pd.DataFrame(self.beta_rows, columns=BETA_COLUMNS),
                         pd.DataFrame(self.history_rows), self.final_statistics(), self.model,
                         layer_table(self.model), cards.run_card(self.all_segments(), self.cfg.device),
                         self.precise_spread())

    def precise_spread(self) -> pd.DataFrame | None:
        """PreciseBN's spread diagnostic per layer (None without ``precise``, or before it ran)."""
        precise = self.holder.estimator("precise") if isinstance(self.holder, EstimatorBank) else None
        if not isinstance(precise, PreciseBN) or precise.spread is None:
            return None
        return pd.DataFrame(precise.spread, columns=PRECISE_SPREAD_COLUMNS)


def statistics_holder(model: nn.Module, cfg: TrainConfig, train_size: int) -> StatisticsHolder:
    """The run's estimators: a bank of ``cfg.estimators``, or under the thesis's protocol
    (``separate_beta``) BN's own buffers at that momentum."""
    if cfg.separate_beta is not None:
        return OwnMomentum(model, cfg.separate_beta)
    batch_size = cfg.batch_size or train_size  # full batch: one batch of every training sample
    return EstimatorBank(model, cfg.betas, cfg.estimators, kappa=batch_size / cfg.reference_batch_size,
                         prediction_batch=cfg.batch_size)


def train_run(model: nn.Module, data: RunData, cfg: TrainConfig, checkpoint: Path | None = None,
              on_epoch: Callable[[int], None] | None = None, label: str = "run") -> RunResult:
    """Train ``model`` on ``data`` for ``cfg.epochs``, resuming from ``checkpoint`` if it exists.

    ``on_epoch(epoch)`` is called after each epoch's checkpoint is written (tests use it to
    interrupt a run at a known point); ``label`` names the run in the progress lines.
    """
    make_deterministic()
    run = Run(model, data.to(cfg.device), cfg)
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        run.resume(checkpoint)
    run.begin_segment()
    started = time.perf_counter()
    first_epoch = run.epoch
    while run.epoch < cfg.epochs:
        row = run.next_epoch()
        if checkpoint is not None:
            save_atomic(run.state_dict(), checkpoint)
        _progress(label, run.epoch, cfg.epochs, first_epoch, started, row)  # before any kill point
        faults.reached("checkpoint", run.epoch)
        if on_epoch is not None:
            on_epoch(run.epoch)
    return run.result()


def _progress(label: str, epoch: int, epochs: int, first_epoch: int, started: float, row: dict) -> None:
    elapsed = time.perf_counter() - started
    eta = elapsed / (epoch - first_epoch) * (epochs - epoch)
    log.info("%s · epoch %d/%d · loss %.4f · train acc %.4f · elapsed %s · ETA %s", label, epoch,
             epochs, row["train_loss"], row["train_accuracy"], _clock(elapsed), _clock(eta))


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60:d}:{minutes % 60:02d}:{secs:02d}"


def write_run(result: RunResult, out_dir: str | Path) -> None:
    """The run's files (module docstring); each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("esm", result.esm), ("betas", result.betas), ("history", result.history),
                        ("layers", result.layers)):
        partial = out / f"{name}.csv.part"
        frame.to_csv(partial, index=False)
        partial.replace(out / f"{name}.csv")
    if result.precise_spread is not None:  # an extra file, not a declared output (module docstring)
        partial = out / f"{PRECISE_SPREAD}.part"
        result.precise_spread.to_csv(partial, index=False)
        partial.replace(out / PRECISE_SPREAD)
    save_atomic(result.model.state_dict(), out / "model.pt")
    result.statistics.save(out / "statistics.pt")
    partial = out / f"{RUN_CARD}.part"
    partial.write_text(json.dumps(result.card, indent=2))
    partial.replace(out / RUN_CARD)
