"""Kills, corrupt data, bad configs, divergence, untrusted files, concurrency — tried for real."""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dmbn import data as data_module
from dmbn import faults
from dmbn.config import ConfigError, check, load_strict, validate
from dmbn.data import DataError, Processed, fetch, md5sum, parse
from dmbn.logs import logging_to, run_history
from dmbn.names import training_seed
from dmbn.statistics import EstimatorStatistics, LayerLayout

from conftest import (MNIST_FILES, ROOT, base_config, http_mirror, quickstart_config, snakemake, planned_rules,
                      snakemake_command, write_config, write_mnist_like)

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
NOWHERE = "http://127.0.0.1:9/"  # the discard port: nothing answers
RUN = "results/quickstart/runs/digits/mini/mlp/seed1/bank"
CHECKPOINT = "results/quickstart/checkpoints/digits/mini/mlp/seed1/bank.ckpt"
TARGET = f"{RUN}/metrics.csv"
TRAIN_LOG = "results/logs/quickstart/digits_mini_mlp_seed1_bank_train.log"


def one_run_config(workdir: Path, epochs: int = 3) -> Path:
    """The quickstart study cut to one training job (digits, mini-batch, BN MLP, seed 1)."""
    config = quickstart_config(workdir, epochs=epochs)
    config["studies"]["quickstart"].update(regimes=["mini"], archs=["mlp"], seeds=[1])
    return write_config(workdir, config)


def run_files(workdir: Path) -> dict[str, bytes]:
    """A run's files but its card (times and segments differ between processes)."""
    folder = workdir / RUN
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "card.json"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    snakemake(workdir, one_run_config(workdir), "--cores", "1", TARGET)
    return workdir


def with_prepared_data(source: Path, workdir: Path) -> None:
    """Reuse the reference's downloaded and split data (files and their times)."""
    for folder in ("resources", "results/data"):
        shutil.copytree(source / folder, workdir / folder, copy_function=shutil.copy2)


# -- 1. kill and resume ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("change", ["split", "batch_free"])
def test_a_changed_setting_never_resumes_a_stale_checkpoint(change, tmp_path):
    """Issue #11's reproductions: a run killed after epoch 1, then the split seed (or BN-BFN's
    batch-free norm) changed and the same command run again. The checkpoint is set aside, the run
    starts over, and its results equal a clean run with the new setting."""
    arch = "mlp-bnbfn" if change == "batch_free" else "mlp"
    run, checkpoint = RUN.replace("/mlp/", f"/{arch}/"), CHECKPOINT.replace("/mlp/", f"/{arch}/")

    def config(folder: Path, changed: bool) -> Path:
        cfg = quickstart_config(folder, epochs=3)
        cfg["studies"]["quickstart"].update(regimes=["mini"], archs=[arch], seeds=[1])
        if arch == "mlp-bnbfn":  # the figures plot its layers alone: its 3 BN layers of depth 6
            cfg["studies"]["quickstart"]["report"] = {"beta_layer": 3, "esm_layers": [2, 3]}
        if changed and change == "split":
            cfg["split"]["seed"] = 7
        if changed and change == "batch_free":
            cfg["studies"]["quickstart"]["train"].update(batch_free="groupnorm", groups=2)
        return write_config(folder, cfg)

    stale = tmp_path / "stale"
    stale.mkdir()
    killed = snakemake(stale, config(stale, False), "--cores", "1", f"{run}/metrics.csv", check=False,
                       env={"DMBN_KILL_AT": "checkpoint:1"})
    assert killed.returncode != 0 and (stale / checkpoint).exists()
    snakemake(stale, config(stale, True), "--cores", "1", "--rerun-incomplete", f"{run}/metrics.csv")
    log = (stale / TRAIN_LOG.replace("_mlp_", f"_{arch}_")).read_text()
    reason = "different data" if change == "split" else "different model"
    assert f"not resuming from checkpoint {checkpoint}" in log and reason in log, log[-2000:]
    assert "resumed from" not in log and len(list((stale / checkpoint).parent.glob("bank.ckpt.*"))) == 1
    clean = tmp_path / "clean"
    clean.mkdir()
    snakemake(clean, config(clean, True), "--cores", "1", f"{run}/metrics.csv")
    for name in ("metrics.csv", "history.csv", "esm.csv"):
        assert (stale / run / name).read_bytes() == (clean / run / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("point", ["step:2", "checkpoint:1", "esm:2"])
def test_sigkilled_training_resumes_bitwise_identically(point, uninterrupted, tmp_path):
    with_prepared_data(uninterrupted, tmp_path)
    config = one_run_config(tmp_path)
    killed = snakemake(tmp_path, config, "--cores", "1", TARGET, check=False, env={"DMBN_KILL_AT": point})
    assert killed.returncode != 0
    assert not (tmp_path / RUN / "esm.csv").exists()       # the killed job's outputs are cleaned ...
    assert (tmp_path / CHECKPOINT).exists()                # ... its checkpoint is not
    first_attempt = (tmp_path / TRAIN_LOG).read_text()
    assert "digits/mini/mlp seed 1 · epoch 1/3 " in first_attempt  # logged before any kill point
    snakemake(tmp_path, config, "--cores", "1", "--rerun-incomplete", TARGET)
    log = (tmp_path / TRAIN_LOG).read_text()
    # Snakemake deleted the job's log before the second attempt: its earlier lines come back first
    assert log.startswith(first_attempt) and "resumed from" in log[len(first_attempt):], log
    printed = [log.count(f"epoch {epoch}/3 ") for epoch in (1, 2, 3)]
    assert printed == [1, 1, 1], log
    assert run_files(tmp_path) == run_files(uninterrupted)


def test_a_log_with_history_keeps_the_earlier_attempts_lines(tmp_path):
    job_log, checkpoint = tmp_path / "logs/job.log", tmp_path / "checkpoints/bank.ckpt"
    with logging_to(job_log, history=run_history(checkpoint)) as log:
        log.info("attempt 1, epoch 1")
    checkpoint.write_bytes(b"a checkpoint")  # what attempt 1 left to resume from
    job_log.unlink()  # as Snakemake does before it runs a job again
    with logging_to(job_log, history=run_history(checkpoint)) as log:
        log.info("attempt 2, epoch 2")
    messages = [line.split(" INFO ", 1)[1] for line in job_log.read_text().splitlines()]
    assert messages == ["attempt 1, epoch 1", "attempt 2, epoch 2"]
    checkpoint.unlink()  # nothing to resume: a fresh start, a fresh log
    with logging_to(job_log, history=run_history(checkpoint)) as log:
        log.info("a new run")
    assert [line.split(" INFO ", 1)[1] for line in job_log.read_text().splitlines()] == ["a new run"]


@pytest.mark.slow
def test_sigkilled_snakemake_resumes_after_unlock(uninterrupted, tmp_path):
    """The whole process group (Snakemake and its job) dies, as on a crashed workstation: killed
    while its training job is paused after epoch 1 (an event, not a guess of how long it takes)."""
    with_prepared_data(uninterrupted, tmp_path)
    config = one_run_config(tmp_path)
    with paused_run(tmp_path, config, start_new_session=True) as process:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    snakemake(tmp_path, config, "--unlock")
    snakemake(tmp_path, config, "--cores", "1", "--rerun-incomplete", TARGET)
    assert run_files(tmp_path) == run_files(uninterrupted)


@contextlib.contextmanager
def paused_run(workdir: Path, config: Path, *args: str, start_new_session: bool = False):
    """A Snakemake run of TARGET whose training job pauses after epoch 1's checkpoint
    (``dmbn.faults``); yields the process once the job is paused there, and lets the job go on
    when the block ends (if the process still lives)."""
    handshake = workdir / "pause"
    handshake.mkdir()
    output = handshake / "snakemake.out"  # a file, not a pipe: a full pipe would stall the run
    process = subprocess.Popen(snakemake_command(workdir, config, "--cores", "1", *args, TARGET),
                               stdout=output.open("w"), stderr=subprocess.STDOUT, text=True,
                               start_new_session=start_new_session,
                               env={**os.environ, "DMBN_PAUSE_AT": "checkpoint:1",
                                    "DMBN_PAUSE_DIR": str(handshake)})
    try:
        while not (handshake / faults.PAUSED).exists():  # the event: the job is inside epoch 2's start
            assert process.poll() is None, f"the run ended before its job paused:\n{output.read_text()[-4000:]}"
            time.sleep(0.1)
        yield process
    finally:
        (handshake / faults.RESUME).touch()
        process.wait(timeout=900)
        process.output = output.read_text()


# -- 2. bad configs -----------------------------------------------------------------------------------

def setting(config: dict, path: str, value) -> dict:
    config = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return config


BAD_CONFIGS = [  # (dotted key, bad value, words the error's FIRST line must contain: key and value)
    ("colour", "blue", ["colour", "blue"]),
    ("train.learning_rate", 0.1, ["train.learning_rate", "0.1"]),
    ("studies.quickstart.sedes", [1], ["studies.quickstart.sedes", "[1]"]),
    ("train.epochs", -5, ["train.epochs", "-5"]),
    ("train.epochs", 0, ["train.epochs", "0"]),
    ("train.epochs", "ten", ["train.epochs", "ten"]),
    ("train.epochs", True, ["train.epochs", "True"]),
    ("studies.quickstart.train.epochs", 2.5, ["studies.quickstart.train.epochs", "2.5"]),
    ("train.lr", -0.1, ["train.lr", "-0.1"]),
    ("train.betas", [0.0, 0.5], ["train.betas[0]", "0.0"]),
    ("train.betas", [0.5, 1.5], ["train.betas[1]", "1.5"]),
    ("train.betas", [-0.2], ["train.betas[0]", "-0.2"]),
    ("train.betas", [], ["train.betas", "[]"]),
    ("train.betas", [0.3, 0.3], ["train.betas", "0.3"]),
    ("studies.quickstart.seeds", [], ["studies.quickstart.seeds", "[]"]),
    ("studies.quickstart.seeds", ["one"], ["studies.quickstart.seeds[0]", "one"]),
    ("studies.quickstart.seeds", [1.0], ["studies.quickstart.seeds[0]", "1.0"]),
    ("studies.quickstart.seeds", [-1], ["studies.quickstart.seeds[0]", "-1"]),
    ("studies.quickstart.seeds", [2**63], ["studies.quickstart.seeds[0]", str(2**63)]),
    ("studies.quickstart.seeds", [1, 2**64], ["studies.quickstart.seeds[1]", str(2**64)]),
    ("split.seed", 2**32, ["split.seed", str(2**32)]),
    ("split.seed", 0.0, ["split.seed", "0.0"]),
    ("studies.quickstart.datasets", ["imagenet"], ["studies.quickstart.datasets", "imagenet"]),
    ("studies.quickstart.archs", ["vgg16"], ["studies.quickstart.archs[0]", "vgg16"]),
    ("studies.quickstart.regimes", ["micro"], ["studies.quickstart.regimes[0]", "micro"]),
    ("train.estimators", ["static", "swa"], ["train.estimators[1]", "swa"]),
    ("train.estimators", ["dmbn"], ["train.estimators", "dmbn"]),
    ("studies.quickstart.train.batch_size", 5000, ["studies.quickstart.train.batch_size", "5000"]),
    ("train.batch_size", 0, ["train.batch_size", "0"]),
    ("train.batch_size", 1, ["train.batch_size", "1"]),
    ("train.batch_size", 50.0, ["train.batch_size", "50.0"]),
    ("studies.quickstart.train.batch_size", 1, ["studies.quickstart.train.batch_size", "1"]),
    ("train.depth", 4.0, ["train.depth", "4.0"]),
    ("train.resnet_blocks", [3, 4.0, 6, 3], ["train.resnet_blocks[1]", "4.0"]),
    ("report.beta_layer", 25, ["report.beta_layer", "25"]),
    ("report.esm_layers", [2, 30], ["report.esm_layers", "30"]),
    ("report.decimals", 3.0, ["report.decimals", "3.0"]),
    ("default_study", "imaginary", ["default_study", "imaginary"]),
    ("device", "gpu", ["device", "gpu"]),
    ("threads", 2.0, ["threads", "2.0"]),
    ("split.validation_fraction", 1.5, ["split.validation_fraction", "1.5"]),
    ("train.batch_free", "instancenorm", ["train.batch_free", "instancenorm"]),
    ("train.resnet_blocks", [3, 4, 6], ["train.resnet_blocks", "[3, 4, 6]"]),
    ("train.esm_samples", 0, ["train.esm_samples", "0"]),
    ("datasets.mnist.torchvision", "SVHN", ["datasets.mnist.torchvision", "SVHN"]),
    ("datasets.mnist.md5", {"train-images-idx3-ubyte.gz": "xyz"}, ["datasets.mnist.md5.train-images-idx3-ubyte.gz", "xyz"]),
    ("studies.quickstart.protocol", "paired", ["studies.quickstart.protocol", "paired"]),
    ("threads", 0, ["threads", "0"]),
    ("studies.quickstart.train.groups", 5, ["studies.quickstart.train.groups", "5"]),
    # nested --config values arrive as strings (snakemake parses them with YAML's BaseLoader):
    # a whole block is not read, nor a string that spells no number ("50" is read as 50)
    ("train", "{batch_size: 50}", ["train", "{batch_size: 50}"]),
    ("train.batch_size", "fifty", ["train.batch_size", "'fifty'"]),
    ("train.batch_size", "50.0", ["train.batch_size", "'50.0'"]),
]


def rejection(config: dict) -> str:
    """What the Snakefile does before any job: the schema, then the semantic checks."""
    try:
        validate(config, SCHEMA)
        check(config)
    except ConfigError as error:
        return str(error)
    pytest.fail("the config was accepted")


@pytest.mark.parametrize("key, value, words", BAD_CONFIGS, ids=[f"{k}={v}" for k, v, _ in BAD_CONFIGS])
def test_bad_config_is_rejected_naming_key_and_value_first(key, value, words):
    config = setting(base_config(), key, value)
    if key == "studies.quickstart.train.groups":
        config = setting(config, "studies.quickstart.train.batch_free", "groupnorm")
    first, *_ = rejection(config).splitlines()
    assert first.startswith(words[0] + ":") or first.startswith(words[0] + "["), first
    for word in words:
        assert word in first, f"{word!r} not in the first line: {first}"
    # a dump shows a dict; an unknown key's line lists the block's known keys, which grow with the schema
    assert "{'" not in first and len(first) < 500, f"a config dump, not a message: {first}"


@pytest.mark.parametrize("key, value", [("train", "{batch_size: 50}"), ("train.batch_size", "many")])
def test_a_command_line_string_that_is_no_number_is_rejected_with_advice(key, value):
    assert "--configfile" in rejection(setting(base_config(), key, value))


@pytest.mark.parametrize("key, value, read", [("train.batch_size", "50", 50), ("download", "false", False),
                                               ("train.lr", "0.05", 0.05), ("train.augment", "True", True)])
def test_command_line_strings_are_read_as_the_numbers_and_booleans_they_spell(key, value, read):
    config = setting(base_config(), key, value)
    validate(config, SCHEMA)
    container = config
    for part in key.split(".")[:-1]:
        container = container[part]
    assert container[key.split(".")[-1]] == read and type(container[key.split(".")[-1]]) is type(read)


def test_a_wrong_number_gets_no_command_line_advice():
    assert "--configfile" not in rejection(setting(base_config(), "train.batch_size", 1))


def test_the_independent_protocol_refuses_betas_and_seeds_its_members_seeds_cannot_hold():
    config = setting(base_config(), "studies.quickstart.protocol", "independent")
    validate(config, SCHEMA)
    check(config)  # the shipped βs (one decimal) and seeds pass
    finer = setting(config, "studies.quickstart.train", {**config["studies"]["quickstart"]["train"],
                                                         "betas": [0.1, 0.1234]})
    first = rejection(finer).splitlines()[0]
    assert first.startswith("studies.quickstart.train.betas:") and "0.1234" in first, first
    # the largest seed (63 bits, as the schema's) whose member of β = 1 still seeds a generator
    largest = (2**63 - 1 - 1000) // 10_000
    highest = setting(config, "studies.quickstart.seeds", [largest])
    validate(highest, SCHEMA)
    check(highest)
    torch.Generator().manual_seed(training_seed(largest, "static-1", "independent") + 2)  # esm_subset's seed + 2
    first = rejection(setting(config, "studies.quickstart.seeds", [largest + 1])).splitlines()[0]
    assert first.startswith("studies.quickstart.seeds:") and str(largest + 1) in first, first
    check(setting(setting(config, "studies.quickstart.protocol", "separate"), "studies.quickstart.seeds",
                  [largest + 1]))  # the separate protocol's members train from the study's seed


LIMITS = [  # (dotted key, the largest or smallest value that must pass, what must accept it)
    ("train.batch_size", 2, lambda v: torch.nn.BatchNorm1d(3).train()(torch.randn(v, 3))),
    ("studies.quickstart.seeds", [2**63 - 1], lambda v: torch.Generator().manual_seed(v[0] + 1)),
    ("studies.quickstart.seeds", [0], lambda v: torch.Generator().manual_seed(v[0])),
    ("split.seed", 2**32 - 1, lambda v: np.random.RandomState(v)),
]


@pytest.mark.parametrize("key, value, consumer", LIMITS, ids=[f"{k}={v}" for k, v, _ in LIMITS])
def test_values_at_the_limits_pass_and_work(key, value, consumer):
    config = setting(base_config(), key, value)
    validate(config, SCHEMA)
    check(config)
    consumer(value)  # the library the value goes to takes it (one more would fail: BAD_CONFIGS)


def test_integer_limits_match_what_the_libraries_take():
    with pytest.raises(ValueError):
        np.random.RandomState(2**32)  # split.seed's limit
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm1d(3).train()(torch.randn(1, 3))  # batch_size 1


def test_validation_fills_in_the_schema_defaults():
    config = base_config()
    for key in ("local_sources", "download", "device", "threads"):
        config.pop(key, None)
    del config["studies"]["quickstart"]["protocol"]
    validate(config, SCHEMA)
    assert (config["local_sources"], config["download"], config["device"], config["threads"]) == ([], True, "cpu", 1)
    assert config["studies"]["quickstart"]["protocol"] == "bank"


def test_the_shipped_config_is_valid():
    config = base_config()
    validate(config, SCHEMA)
    check(config)


def test_duplicate_study_names_are_rejected(tmp_path):
    text = (ROOT / "config.yaml").read_text().replace(
        "studies:\n", "studies:\n  quickstart:\n    datasets: [digits]\n    regimes: [mini]\n"
                      "    archs: [mlp]\n    seeds: [9]\n", 1)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="duplicate key 'quickstart'"):
        load_strict(path)
    result = snakemake(tmp_path, path, "-n", check=False)
    assert result.returncode != 0 and "duplicate key 'quickstart'" in result.stdout + result.stderr



def test_yaml_merge_keys_are_read_as_yaml_reads_them_and_a_duplicate_beside_one_is_still_refused(tmp_path):
    # studies sharing a block through an anchor (`<<: *sweep`) and overriding one key of it
    path = tmp_path / "config.yaml"
    path.write_text("base: &sweep\n  seeds: [1]\n  archs: [mlp]\nother:\n  <<: *sweep\n  seeds: [2, 3]\n")
    assert load_strict(path) == yaml.safe_load(path.read_text()) == {
        "base": {"seeds": [1], "archs": ["mlp"]}, "other": {"seeds": [2, 3], "archs": ["mlp"]}}
    path.write_text("base: &sweep\n  seeds: [1]\nother:\n  <<: *sweep\n  archs: [mlp]\n  archs: [mlp]\n")
    with pytest.raises(ConfigError, match="duplicate key 'archs' at line 6"):
        load_strict(path)

def test_snakemake_rejects_a_bad_config_before_any_job(tmp_path):
    config = setting(quickstart_config(tmp_path), "studies.quickstart.train.lr", "fast")
    result = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "studies.quickstart.train.lr: 'fast' is not of type 'number'" in output
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_snakemake_reads_nested_command_line_numbers_and_rejects_the_rest(tmp_path):
    config = write_config(tmp_path, quickstart_config(tmp_path))
    planned = snakemake(tmp_path, config, "-n", "--config", "train={batch_size: 50}", "download=false")
    assert planned_rules(planned).get("train", 0) > 0  # parsed and planned
    result = snakemake(tmp_path, config, "--cores", "1", "--config", "train={batch_size: fifty}", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "train.batch_size: 'fifty' is not of type 'integer'" in output and "--configfile" in output
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


# -- 3. corrupt data ----------------------------------------------------------------------------------

def idx_study(workdir: Path, url: str, md5: dict) -> Path:
    config = base_config()
    config.update(data_root=str(workdir / "resources/data"), local_sources=[], default_study="idx")
    config["datasets"] = {"tiny-idx": {"torchvision": "MNIST", "mirrors": [url], "md5": md5}}
    config["studies"] = {"idx": {"datasets": ["tiny-idx"], "regimes": ["mini"], "archs": ["mlp"], "seeds": [1],
                                 "train": {"epochs": 1, "depth": 2, "width": 8, "batch_size": 50,
                                           "precise_batches": 2}}}
    config["report"].update(beta_layer=1, esm_layers=[1])
    return write_config(workdir, config)


@pytest.mark.slow
def test_truncated_archive_fails_naming_it_and_a_good_one_then_works(tmp_path):
    mirror = tmp_path / "mirror"
    md5 = write_mnist_like(mirror)
    good = (mirror / "train-labels-idx1-ubyte.gz").read_bytes()
    (mirror / "train-labels-idx1-ubyte.gz").write_bytes(good[: len(good) // 2])  # truncated
    workdir = tmp_path / "work"
    workdir.mkdir()
    target = "results/idx/runs/tiny-idx/mini/mlp/seed1/bank/metrics.csv"
    with http_mirror(mirror) as url:
        config = idx_study(workdir, url, md5)
        failed = snakemake(workdir, config, "--cores", "1", target, check=False)
        assert failed.returncode != 0
        log = (workdir / "results/logs/data/tiny-idx_download.log").read_text()
        assert "train-labels-idx1-ubyte.gz" in log and "missing" in log
        assert not (workdir / "results/data/tiny-idx").exists()  # no processed outputs
        (mirror / "train-labels-idx1-ubyte.gz").write_bytes(good)
        snakemake(workdir, config, "--cores", "1", target)
    assert (workdir / target).exists()


def payload_md5s(folder: Path) -> dict[str, str]:
    """md5 of each archive's uncompressed content, as dmbn.data.IDX_PAYLOAD_MD5 holds them."""
    return {name.removesuffix(".gz"): hashlib.md5(gzip.decompress((folder / name).read_bytes())).hexdigest()
            for name in MNIST_FILES}


BROKEN = {  # how a local copy is broken -> (its bytes from the good ones, words the warning names)
    "truncated": (lambda good: good[: len(good) // 2], ["truncated", "EOFError"]),
    "garbled-header": (lambda good: b"GARBLED!" + good[8:], ["corrupt", "Not a gzipped file"]),
    "garbled-body": (lambda good: good[:40] + bytes(b ^ 0xFF for b in good[40:80]) + good[80:],
                     ["corrupt", "zlib.error"]),
    "empty": (lambda good: b"", ["empty (0 bytes)"]),
}
VICTIM = "train-images-idx3-ubyte.gz"


def local_sources(tmp_path: Path, broken: str) -> tuple[Path, Path, dict[str, str]]:
    """Two local sources: the first has a broken copy of VICTIM, the second good copies."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    md5 = write_mnist_like(good)
    bad.mkdir()
    (bad / VICTIM).write_bytes(BROKEN[broken][0]((good / VICTIM).read_bytes()))
    return bad, good, md5


@pytest.mark.parametrize("broken", BROKEN)
def test_a_broken_local_copy_is_named_and_the_next_source_used(broken, tmp_path, monkeypatch, caplog):
    bad, good, md5 = local_sources(tmp_path, broken)
    # the archive md5 fails, so the payload is unpacked and checked: the path that met the corruption
    monkeypatch.setitem(data_module.IDX_PAYLOAD_MD5, "MNIST", payload_md5s(good))
    spec = {"torchvision": "MNIST", "mirrors": [NOWHERE], "md5": md5}
    with caplog.at_level(logging.WARNING, logger="dmbn"):
        fetch("tiny-idx", spec, tmp_path / "data", sources=[str(bad), str(good)], download=False)
    warning = next(r.getMessage() for r in caplog.records if str(bad / VICTIM) in r.getMessage())
    assert all(word in warning for word in BROKEN[broken][1]), warning
    raw = tmp_path / "data" / "MNIST" / "raw"
    assert md5sum(raw / VICTIM.removesuffix(".gz")) == payload_md5s(good)[VICTIM.removesuffix(".gz")]
    assert not list(tmp_path.rglob("*.part"))
    assert parse("tiny-idx", spec, tmp_path / "data").x_train.shape == (400, 1, 28, 28)


@pytest.mark.parametrize("broken", BROKEN)
def test_only_broken_copies_fail_naming_file_and_reason_and_leave_nothing(broken, tmp_path, monkeypatch):
    bad, good, md5 = local_sources(tmp_path, broken)
    monkeypatch.setitem(data_module.IDX_PAYLOAD_MD5, "MNIST", payload_md5s(good))
    spec = {"torchvision": "MNIST", "mirrors": [NOWHERE], "md5": md5}
    with pytest.raises(DataError) as error:
        fetch("tiny-idx", spec, tmp_path / "data", sources=[str(bad)], download=False)
    message = str(error.value)
    assert VICTIM in message and str(bad / VICTIM) in message
    assert all(word in message for word in BROKEN[broken][1]), message
    assert not list(tmp_path.rglob("*.part"))
    assert not (tmp_path / "data" / "MNIST" / "raw" / VICTIM.removesuffix(".gz")).exists()


def local_idx_study(workdir: Path, source: Path, md5: dict) -> Path:
    """The idx study (below) fed from a local source only, with no network."""
    config = yaml.safe_load(idx_study(workdir, NOWHERE, md5).read_text())
    config.update(local_sources=[str(source)], download=False)
    return write_config(workdir, config)


@pytest.mark.slow
def test_following_the_prepare_errors_advice_works(tmp_path):
    source = tmp_path / "source"
    md5 = write_mnist_like(source)
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = local_idx_study(workdir, source, md5)
    tensors = "results/data/tiny-idx/tensors.pt"
    snakemake(workdir, config, "--cores", "1", str(workdir / "resources/data/tiny-idx/fetched.json"))
    labels = workdir / "resources/data/tiny-idx/MNIST/raw/train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:100])  # damaged after the download
    failed = snakemake(workdir, config, "--cores", "1", tensors, check=False)
    assert failed.returncode != 0
    log = (workdir / "results/logs/data/tiny-idx_prepare.log").read_text()
    assert str(labels) in log
    advice = re.search(r"delete the folder (\S+) to fetch fresh copies, and run again", log)
    assert advice, log
    shutil.rmtree(workdir / advice.group(1))  # as told
    snakemake(workdir, config, "--cores", "1", tensors)
    assert Processed.load(workdir / tensors).x_train.shape == (400, 1, 28, 28)


@pytest.mark.slow
def test_following_the_download_errors_advice_works(tmp_path):
    bad, good, md5 = local_sources(tmp_path, "truncated")
    for name in MNIST_FILES:
        if name != VICTIM:
            shutil.copy(good / name, bad / name)
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = local_idx_study(workdir, bad, md5)
    tensors = "results/data/tiny-idx/tensors.pt"
    failed = snakemake(workdir, config, "--cores", "1", tensors, check=False)
    assert failed.returncode != 0
    log = (workdir / "results/logs/data/tiny-idx_download.log").read_text()
    assert f"ignored {bad / VICTIM}" in log
    advice = re.search(r"Copy them into (\S+)/ or into a folder listed under `local_sources`", log)
    assert advice, log
    shutil.copy(good / VICTIM, workdir / advice.group(1))  # as told
    snakemake(workdir, config, "--cores", "1", tensors)
    assert Processed.load(workdir / tensors).x_train.shape == (400, 1, 28, 28)
    assert not list(workdir.rglob("*.part"))


# -- 4. divergence --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_diverging_run_fails_naming_epoch_step_and_loss(tmp_path):
    config = quickstart_config(tmp_path)
    config["studies"]["quickstart"].update(regimes=["mini"], archs=["mlp"], seeds=[1])
    config["studies"]["quickstart"]["train"]["lr"] = 1e10
    config["studies"]["quickstart"].pop("regime_overrides", None)  # the mini-batch lr would win
    result = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1", TARGET, check=False)
    assert result.returncode != 0
    log = (tmp_path / TRAIN_LOG).read_text()
    assert "DivergenceError: training diverged at epoch 1, step" in log and "loss = " in log
    assert not (tmp_path / RUN / "esm.csv").exists() and not (tmp_path / CHECKPOINT).exists()


# -- 5. untrusted files -----------------------------------------------------------------------------------

class Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def test_tampered_statistics_file_is_refused(tmp_path):
    stats = EstimatorStatistics(["static-0.1"], torch.zeros(1, 2), torch.ones(1, 2), LayerLayout(("a",), (2,)))
    stats.save(tmp_path / "statistics.pt")
    assert EstimatorStatistics.load(tmp_path / "statistics.pt").names == ["static-0.1"]
    torch.save({"names": Payload(), "mean": stats.mean}, tmp_path / "statistics.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        EstimatorStatistics.load(tmp_path / "statistics.pt")


# -- 6. concurrency ---------------------------------------------------------------------------------------

def directory_state(workdir: Path) -> dict[str, tuple[int, int]]:
    """Every file in a run's directory with its size and modification time, but what changes
    without touching a result: Snakemake's logs, the job's scripts, a dry run's cache of file
    times, and the test's own pause handshake."""
    return {str(p.relative_to(workdir)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(workdir.rglob("*")) if p.is_file()
            and not str(p.relative_to(workdir)).startswith((".snakemake/log", ".snakemake/scripts", ".snakemake/iocache", "pause"))}


LIVE_RUN = "another Snakemake run holds the working directory"


@pytest.mark.slow
def test_a_second_snakemake_on_the_same_directory_is_locked_out(uninterrupted, tmp_path):
    """A second run beside a live one, its training job paused mid-run: the second is refused
    with a message naming the live run (not told its files are incomplete), so are --unlock and
    --rerun-incomplete; a dry run is told why it sees incomplete files; nothing of the live run's
    files is touched or marked, and the live run then finishes with an uninterrupted run's files."""
    with_prepared_data(uninterrupted, tmp_path)
    config = one_run_config(tmp_path)
    with paused_run(tmp_path, config) as first:
        before = directory_state(tmp_path)
        assert (tmp_path / ".snakemake" / "incomplete").exists() and (tmp_path / CHECKPOINT).exists()
        for extra in ([], ["--rerun-incomplete"], ["--unlock"]):
            second = snakemake(tmp_path, config, "--cores", "1", *extra, TARGET, check=False)
            output = second.stdout + second.stderr
            assert second.returncode != 0 and LIVE_RUN in output and f"pid {first.pid} " in output, output[-3000:]
            assert "IncompleteFilesException" not in output and "LockException" not in output, output[-3000:]
        dry = snakemake(tmp_path, config, "-n", TARGET, check=False)
        assert "A live Snakemake run holds this directory" in dry.stdout + dry.stderr, dry.stderr[-3000:]
        report_mode = snakemake(tmp_path, config, "--list-rules", check=False)
        assert report_mode.returncode == 0 and "holds" not in report_mode.stdout + report_mode.stderr
        assert directory_state(tmp_path) == before
        assert first.poll() is None
    assert first.returncode == 0, first.output[-3000:]
    assert run_files(tmp_path) == run_files(uninterrupted)
    again = snakemake(tmp_path, config, "--cores", "1", TARGET)  # the lock died with the first run
    assert "Nothing to be done" in again.stdout + again.stderr
