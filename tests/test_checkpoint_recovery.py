"""Issue #24, problem 4: no finished work is lost to a failed change. A checkpoint that does not
match the run's settings is set aside under its identity's hash, and found again when the
settings return to what it was made with."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import pytest
import torch

from dmbn import checkpoints
from dmbn.checkpoints import identity_hash
from dmbn.logs import logging_to, run_history
from dmbn.models import build_model
from dmbn.train import DivergenceError, TrainConfig, train_run, write_run

from conftest import quickstart_config, snakemake, write_config

CONFIG = TrainConfig(epochs=3, batch_size=40, precise_batches=4, seed=7)
DIVERGING = dataclasses.replace(CONFIG, lr=1e10)


def fresh_model(seed: int = 7):
    torch.manual_seed(seed)
    return build_model("mlp", (1, 1, 12), 3, depth=4, width=16)


def run_files(folder: Path) -> dict[str, bytes]:
    """A run's files but its card (times and segments differ between processes)."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if name != "card.json"}


class Interrupt(Exception):
    pass


def counting(epochs: list[int], stop_at: int | None = None):
    """An ``on_epoch`` hook that records every epoch trained (and interrupts after ``stop_at``)."""
    def hook(done: int) -> None:
        epochs.append(done)
        if done == stop_at:
            raise Interrupt
    return hook


def stored_identity(checkpoint: Path) -> dict:
    return torch.load(checkpoint, weights_only=True)["identity"]


def set_aside_files(checkpoint: Path) -> list[str]:
    return sorted(p.name for p in checkpoint.parent.iterdir() if p.name.startswith(checkpoint.name + "."))


# -- the identity's hash ---------------------------------------------------------------------------

# canonical JSON written by hand: keys sorted at every level, no spaces
SMALL_IDENTITY = {"train": {"seed": 1, "lr": 0.1}, "model": "MLP()", "data": "abc", "threads": 1, "torch": "2.14"}
SMALL_CANONICAL = '{"data":"abc","model":"MLP()","threads":1,"torch":"2.14","train":{"lr":0.1,"seed":1}}'


def test_identity_hash_is_sha256_of_the_canonical_json_whatever_the_key_order():
    expected = hashlib.sha256(SMALL_CANONICAL.encode()).hexdigest()[:16]
    reordered = {k: SMALL_IDENTITY[k] for k in reversed(SMALL_IDENTITY)}
    reordered["train"] = {"lr": 0.1, "seed": 1}
    assert identity_hash(SMALL_IDENTITY) == identity_hash(reordered) == expected
    assert identity_hash(copy.deepcopy(SMALL_IDENTITY)) == expected


def real_identity(cfg: TrainConfig = CONFIG) -> dict:
    return checkpoints.identity(cfg.settings(), fresh_model(), "data-hash")


def changed(identity: dict, path: tuple[str, ...]) -> dict:
    """``identity`` with the value at ``path`` replaced by another of the same kind."""
    other = copy.deepcopy(identity)
    holder = other
    for key in path[:-1]:
        holder = holder[key]
    value = holder[path[-1]]
    holder[path[-1]] = (not value if isinstance(value, bool) else value + 1 if isinstance(value, (int, float))
                        else value + ["x"] if isinstance(value, list) else "other" if value is None
                        else value + "x")
    assert other != identity
    return other


IDENTITY_KEYS = [("train", k) for k in real_identity()["train"]] + [(k,) for k in real_identity() if k != "train"]


@pytest.mark.parametrize("path", IDENTITY_KEYS, ids=".".join)
def test_identity_hash_differs_for_any_differing_key(path):
    identity = real_identity()
    assert identity_hash(changed(identity, path)) != identity_hash(identity)


def test_identity_hash_ignores_epochs_and_counts_a_missing_setting_as_its_default():
    defaults = TrainConfig().settings()
    assert identity_hash(real_identity(CONFIG)) == identity_hash(real_identity(dataclasses.replace(CONFIG, epochs=9)))
    old = real_identity()
    del old["train"]["channels_last"]  # written before dmbn had the setting (default False)
    assert identity_hash(old, defaults) == identity_hash(real_identity(), defaults)
    assert identity_hash(old, defaults) != identity_hash(real_identity(dataclasses.replace(CONFIG, channels_last=True)), defaults)


# -- set aside, and found again ----------------------------------------------------------------------

def test_a_mismatching_checkpoint_is_set_aside_under_its_identity_hash(data, tmp_path, caplog):
    checkpoint = tmp_path / "bank.ckpt"
    train_run(fresh_model(), data, CONFIG, checkpoint)
    digest = identity_hash(stored_identity(checkpoint))
    with pytest.raises(DivergenceError):
        train_run(fresh_model(), data, DIVERGING, checkpoint)
    assert set_aside_files(checkpoint) == [f"bank.ckpt.{digest}.epoch3"] and not checkpoint.exists()
    aside = str(tmp_path / f"bank.ckpt.{digest}.epoch3")
    assert any(aside in r.message and "different train.lr" in r.message and "starting over" in r.message
               for r in caplog.records)


def test_returning_to_the_settings_resumes_the_set_aside_checkpoint_without_training(data, tmp_path, caplog):
    """The issue's report, in the library: a finished run, a diverging lr, the old lr back."""
    write_run(train_run(fresh_model(), data, CONFIG), tmp_path / "straight")
    checkpoint = tmp_path / "ckpt" / "bank.ckpt"
    train_run(fresh_model(), data, CONFIG, checkpoint)
    with pytest.raises(DivergenceError):
        train_run(fresh_model(), data, DIVERGING, checkpoint)
    [aside] = set_aside_files(checkpoint)
    trained: list[int] = []
    caplog.clear()
    caplog.set_level(logging.INFO, logger="dmbn")
    write_run(train_run(fresh_model(seed=99), data, CONFIG, checkpoint, on_epoch=counting(trained)),
              tmp_path / "recovered")
    assert trained == []  # not one epoch again
    assert run_files(tmp_path / "recovered") == run_files(tmp_path / "straight")
    assert checkpoint.exists() and set_aside_files(checkpoint) == []  # moved back, not copied
    assert any(f"resuming from set-aside checkpoint {checkpoint.parent / aside}, made with the same settings"
               in r.message for r in caplog.records)


def test_interrupted_runs_of_two_settings_each_continue_where_they_stopped(data, tmp_path):
    """A after 1 epoch, B after 2, A again, B again: every epoch of each is trained once."""
    other = dataclasses.replace(CONFIG, lr=0.05)
    for name, cfg in (("a", CONFIG), ("b", other)):
        write_run(train_run(fresh_model(), data, cfg), tmp_path / f"straight-{name}")
    checkpoint = tmp_path / "bank.ckpt"
    trained = {"a": [], "b": []}
    with pytest.raises(Interrupt):
        train_run(fresh_model(), data, CONFIG, checkpoint, on_epoch=counting(trained["a"], stop_at=1))
    digest_a = identity_hash(stored_identity(checkpoint))
    with pytest.raises(Interrupt):
        train_run(fresh_model(), data, other, checkpoint, on_epoch=counting(trained["b"], stop_at=2))
    write_run(train_run(fresh_model(), data, CONFIG, checkpoint, on_epoch=counting(trained["a"])), tmp_path / "a")
    write_run(train_run(fresh_model(), data, other, checkpoint, on_epoch=counting(trained["b"])), tmp_path / "b")
    assert trained == {"a": [1, 2, 3], "b": [1, 2, 3]}
    assert run_files(tmp_path / "a") == run_files(tmp_path / "straight-a")
    assert run_files(tmp_path / "b") == run_files(tmp_path / "straight-b")
    assert set_aside_files(checkpoint) == [f"bank.ckpt.{digest_a}.epoch3"]  # A's finished run, kept


def test_a_set_aside_checkpoint_further_along_wins_over_the_runs_own(data, tmp_path):
    """Same settings in both: the one with more epochs is resumed, the other set aside."""
    checkpoint = tmp_path / "bank.ckpt"
    train_run(fresh_model(), data, CONFIG, checkpoint)  # 3 epochs
    train_run(fresh_model(), data, dataclasses.replace(CONFIG, epochs=2), checkpoint)  # too many: aside
    digest = identity_hash(stored_identity(checkpoint))
    assert set_aside_files(checkpoint) == [f"bank.ckpt.{digest}.epoch3"]  # and its own now holds 2
    longer = dataclasses.replace(CONFIG, epochs=4)
    trained: list[int] = []
    write_run(train_run(fresh_model(), data, longer, checkpoint, on_epoch=counting(trained)), tmp_path / "resumed")
    write_run(train_run(fresh_model(), data, longer), tmp_path / "straight")
    assert trained == [4]
    assert run_files(tmp_path / "resumed") == run_files(tmp_path / "straight")
    assert set_aside_files(checkpoint) == [f"bank.ckpt.{digest}.epoch2"]


def test_a_set_aside_checkpoint_with_more_epochs_than_asked_is_not_resumed(data, tmp_path):
    checkpoint = tmp_path / "bank.ckpt"
    train_run(fresh_model(), data, CONFIG, checkpoint)
    digest = identity_hash(stored_identity(checkpoint))
    checkpoint.replace(checkpoints.aside_path(checkpoint, digest, 3))
    trained: list[int] = []
    train_run(fresh_model(), data, dataclasses.replace(CONFIG, epochs=2), checkpoint, on_epoch=counting(trained))
    assert trained == [1, 2] and set_aside_files(checkpoint) == [f"bank.ckpt.{digest}.epoch3"]


def test_an_unreadable_set_aside_checkpoint_is_renamed_stale_and_the_run_starts_over(data, tmp_path, caplog):
    checkpoint = tmp_path / "bank.ckpt"
    train_run(fresh_model(), data, CONFIG, checkpoint)
    aside = checkpoints.aside_path(checkpoint, identity_hash(stored_identity(checkpoint)), 3)
    aside.write_bytes(checkpoint.read_bytes()[:1000])
    checkpoint.unlink()
    trained: list[int] = []
    train_run(fresh_model(), data, CONFIG, checkpoint, on_epoch=counting(trained))
    assert trained == [1, 2, 3]
    [stale] = set_aside_files(checkpoint)
    assert stale.startswith(aside.name + ".stale-") and (tmp_path / stale).stat().st_size == 1000
    assert any(str(aside) in r.message and "unreadable" in r.message for r in caplog.records)


# -- the run's log ------------------------------------------------------------------------------------

def test_a_log_keeps_its_history_while_a_set_aside_checkpoint_may_be_resumed(tmp_path):
    job_log, checkpoint = tmp_path / "logs/job.log", tmp_path / "checkpoints/bank.ckpt"
    with logging_to(job_log, history=run_history(checkpoint)) as log:
        log.info("attempt 1, epoch 1")
    aside = checkpoint.with_name("bank.ckpt.0123456789abcdef.epoch1")
    aside.write_bytes(b"set aside by attempt 2")  # and attempt 2 failed before its first epoch
    job_log.unlink()  # as Snakemake does before it runs a job again
    with logging_to(job_log, history=run_history(checkpoint)) as log:
        log.info("attempt 3")
    messages = [line.split(" INFO ", 1)[1] for line in job_log.read_text().splitlines()]
    assert messages == ["attempt 1, epoch 1", "attempt 3"]


# -- the reproduction, through the real workflow -------------------------------------------

RUN = "results/quickstart/runs/digits/mini/mlp/seed1/bank"
TARGET = f"{RUN}/metrics.csv"
TRAIN_LOG = "results/logs/quickstart/digits_mini_mlp_seed1_bank_train.log"
CHECKPOINTS = "results/quickstart/checkpoints/digits/mini/mlp/seed1"


def one_run_config(workdir: Path, lr: float | None = None) -> Path:
    """The quickstart study cut to one 3-epoch training job (digits, mini-batch, BN MLP, seed 1);
    ``lr`` replaces the mini-batch regime's, the one that applies to it."""
    config = quickstart_config(workdir, epochs=3)
    study = config["studies"]["quickstart"]
    study.update(regimes=["mini"], archs=["mlp"], seeds=[1])
    if lr is not None:
        study["regime_overrides"]["mini"]["train"]["lr"] = lr
    return write_config(workdir, config)


@pytest.mark.slow
def test_a_failed_change_of_lr_loses_no_finished_epoch(tmp_path):
    snakemake(tmp_path, one_run_config(tmp_path), "--cores", "1", TARGET)
    finished = {p.name: p.read_bytes() for p in sorted((tmp_path / RUN).iterdir()) if p.name != "card.json"}
    failed = snakemake(tmp_path, one_run_config(tmp_path, lr=1e10), "--cores", "1", TARGET, check=False)
    assert failed.returncode != 0 and "DivergenceError" in (tmp_path / TRAIN_LOG).read_text()
    before = (tmp_path / TRAIN_LOG).read_text()
    snakemake(tmp_path, one_run_config(tmp_path), "--cores", "1", TARGET)
    log = (tmp_path / TRAIN_LOG).read_text()
    assert log.startswith(before), log  # the earlier attempts' lines are kept
    attempt = log[len(before):]
    assert "resuming from set-aside checkpoint" in attempt and "made with the same settings" in attempt, attempt
    assert f"resumed from {CHECKPOINTS}/bank.ckpt after epoch 3" in attempt, attempt
    assert [attempt.count(f"epoch {k}/3 ") for k in (1, 2, 3)] == [0, 0, 0], attempt
    assert {p.name: p.read_bytes() for p in sorted((tmp_path / RUN).iterdir()) if p.name != "card.json"} == finished
