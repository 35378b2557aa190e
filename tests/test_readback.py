"""What a job reads back is checked (issue #24): per-run and study CSVs against their schemas and
the rows their run should hold, ``.pt`` files for being readable; every error names the file,
the line and the column (or the job that rebuilds the file)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from dmbn.checkpoints import save_atomic
from dmbn.config import run_expectation
from dmbn.data import Processed, load_run_data
from dmbn.evaluate import evaluate_estimators
from dmbn.models import build_model
from dmbn.names import ESTIMATOR_KINDS, run_estimators
from dmbn.readback import ReadbackError, load_weights, read_run_file, read_study_file
from dmbn.runs import read_runs
from dmbn.statistics import EstimatorStatistics, LayerLayout
from dmbn.train import TrainConfig, train_run, write_run

from conftest import ROOT, quickstart_config, snakemake, tiny_data, write_config

EPOCHS = 2
BETAS = (0.1, 0.5, 1.0)
EVERY_KIND = TrainConfig(epochs=EPOCHS, batch_size=40, precise_batches=3, seed=2, betas=BETAS,
                         estimators=ESTIMATOR_KINDS)
RUN_CSVS = ("metrics.csv", "history.csv", "esm.csv", "betas.csv", "layers.csv")


def write_tiny_run(folder: Path, cfg: TrainConfig) -> Path:
    """A real run's files, as the train and evaluate jobs write them (metrics.csv included)."""
    torch.manual_seed(cfg.seed)
    data = tiny_data()
    model = build_model("mlp", data.input_shape, data.num_classes, depth=3, width=8)
    write_run(train_run(model, data, cfg), folder)
    statistics = EstimatorStatistics.load(folder / "statistics.pt")
    evaluate_estimators(model, statistics, data.x_test, data.y_test, data.num_classes).to_csv(
        folder / "metrics.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def bank_run(tmp_path_factory) -> Path:
    """Every estimator kind of the registry, test-batch and the β* choosers included."""
    return write_tiny_run(tmp_path_factory.mktemp("bank"), EVERY_KIND)


@pytest.fixture(scope="module")
def separate_run(tmp_path_factory) -> Path:
    """The thesis's protocol: one static β, BN's own buffers, no β* rows."""
    cfg = TrainConfig(epochs=EPOCHS, batch_size=40, seed=2, separate_beta=0.5)
    return write_tiny_run(tmp_path_factory.mktemp("separate"), cfg)


def bank_expectation() -> dict:
    return {"epochs": EPOCHS, "estimators": run_estimators(ESTIMATOR_KINDS, BETAS)}


# -- good files pass ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", RUN_CSVS)
def test_a_real_runs_files_pass(bank_run, separate_run, name):
    read_run_file(bank_run / name, bank_expectation())
    read_run_file(separate_run / name, {"epochs": EPOCHS, "estimators": ["static-0.5"]})


def test_the_expected_estimators_are_those_a_run_writes(bank_run):
    written = pd.read_csv(bank_run / "metrics.csv").estimator
    assert sorted(bank_expectation()["estimators"]) == sorted(written)


def test_a_study_configs_expectation_names_its_rows():
    config = quickstart_config(Path("/nowhere"), epochs=4)
    expect = run_expectation(config, "quickstart", "mini")
    statics = [f"static-0.{i}" for i in range(1, 10)]
    assert expect == {"epochs": 4, "estimators": [*statics, "dmbn", "cma", "precise", "recalibrated"]}
    assert run_expectation(config, "quickstart", "mini", "static-0.3")["estimators"] == ["static-0.3"]


PUBLISHED = sorted(p.relative_to(ROOT) for pattern in ("docs/results/*/metrics.csv",
                                                       "docs/results/*/summaries/*.csv",
                                                       "docs/results/*/shift/scores.csv",
                                                       "docs/results/*/shift/esm_mu_by_layer.csv")
                   for p in ROOT.glob(pattern))


@pytest.mark.parametrize("path", PUBLISHED, ids=str)
def test_every_published_study_file_passes(path):
    """Each file passes its schema and has rows; the one file allowed none is the β* summary of a
    study whose runs have no row that chooses β (an lr sweep: no DMBN)."""
    from dmbn.names import ESTIMATORS, estimator_kind

    frame = read_study_file(ROOT / path)
    if path.name == "beta_star.csv" and frame.empty:
        estimators = pd.read_csv(ROOT / path.parents[1] / "metrics.csv").estimator.unique()
        assert not any(ESTIMATORS[estimator_kind(e)].stage == "chosen" for e in estimators), path
    else:
        assert len(frame)


# -- bad values are named by file, line and column ----------------------------------------------------------

def edit_cell(path: Path, row: int, column: str, text: str) -> None:
    """Replace one cell of a CSV as text (row 0: the first data line, line 2 of the file)."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = text
    lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def drop_column(path: Path, column: str) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.drop(columns=column).to_csv(path, index=False)


def drop_rows(path: Path, column: str, value: str) -> None:
    lines = path.read_text().splitlines()
    at = lines[0].split(",").index(column)
    path.write_text("\n".join([lines[0]] + [l for l in lines[1:] if l.split(",")[at] != value]) + "\n")


# (file, edit, what the message must name besides the file)
BAD = {
    "letter O in accuracy": ("metrics.csv", lambda p: edit_cell(p, 2, "accuracy", "O.9537"),
                             ["line 4", "estimator 'static-1'", "column accuracy", "'O.9537' is not a number"]),
    "NaN sensitivity": ("metrics.csv", lambda p: edit_cell(p, 0, "sensitivity", "nan"),
                        ["line 2", "column sensitivity", "empty (NaN)"]),
    "inf F1": ("metrics.csv", lambda p: edit_cell(p, 1, "f1", "inf"), ["line 3", "column f1", "not finite"]),
    "accuracy 1.2": ("metrics.csv", lambda p: edit_cell(p, 3, "accuracy", "1.2"),
                     ["line 5", "column accuracy", "1.2", "[0, 1]"]),
    "specificity -0.1": ("metrics.csv", lambda p: edit_cell(p, 0, "specificity", "-0.1"),
                         ["line 2", "column specificity", "-0.1"]),
    "negative ESM": ("esm.csv", lambda p: edit_cell(p, 4, "esm_mu", "-0.25"),
                     ["line 6", "column esm_mu", "-0.25", "negative"]),
    "inf ESM sigma": ("esm.csv", lambda p: edit_cell(p, 0, "esm_sigma", "inf"),
                      ["line 2", "column esm_sigma", "not finite"]),
    "beta 0": ("betas.csv", lambda p: edit_cell(p, 1, "beta", "0"), ["line 3", "column beta", "(0, 1]"]),
    "beta 1.5": ("betas.csv", lambda p: edit_cell(p, 0, "beta", "1.5"), ["line 2", "column beta", "1.5"]),
    "NaN train loss": ("history.csv", lambda p: edit_cell(p, 1, "train_loss", ""),
                       ["line 3", "epoch 2", "column train_loss", "empty"]),
    "ESM-set accuracy 7": ("history.csv", lambda p: edit_cell(p, 0, "esm_accuracy_dmbn", "7"),
                           ["line 2", "column esm_accuracy_dmbn", "[0, 1]"]),
    "epoch 1.5": ("history.csv", lambda p: edit_cell(p, 0, "epoch", "1.5"),
                  ["line 2", "column epoch", "1.5 is not a whole number"]),
    "unknown estimator": ("metrics.csv", lambda p: edit_cell(p, 0, "estimator", "statc-0.1"),
                          ["line 2", "column estimator", "'statc-0.1'"]),
    "zero channels": ("layers.csv", lambda p: edit_cell(p, 1, "channels", "0"), ["line 3", "column channels"]),
    "missing column": ("metrics.csv", lambda p: drop_column(p, "accuracy"),
                       ["line 1", "no column 'accuracy'"]),
    "missing estimator row": ("metrics.csv", lambda p: drop_rows(p, "estimator", "dmbn"),
                              ["no row with estimator 'dmbn'", "column estimator"]),
    "missing epoch in history": ("history.csv", lambda p: drop_rows(p, "epoch", "1"),
                                 ["no row with epoch 1", "column epoch"]),
    "missing epoch in esm": ("esm.csv", lambda p: drop_rows(p, "epoch", "2"),
                             ["no row with epoch 2", "column epoch"]),
    "missing epoch of a β chooser": ("betas.csv", lambda p: drop_rows(p, "estimator", "dmbn-sigma"),
                                     ["no row with epoch 1 of estimator 'dmbn-sigma'", "column epoch"]),
    "missing ESM-set accuracy": ("history.csv", lambda p: drop_column(p, "esm_accuracy_precise"),
                                 ["line 1", "no column 'esm_accuracy_precise'"]),
}


@pytest.mark.parametrize("case", BAD, ids=str)
def test_a_bad_value_names_file_line_and_column(bank_run, tmp_path, case):
    name, edit, named = BAD[case]
    path = tmp_path / name
    shutil.copy(bank_run / name, path)
    edit(path)
    with pytest.raises(ReadbackError) as error:
        read_run_file(path, bank_expectation())
    message = str(error.value)
    for part in [str(path), *named, f"rm {path}"]:
        assert part in message, f"{part!r} not in:\n{message}"


def test_read_runs_names_the_one_bad_file_among_good_ones(bank_run, tmp_path):
    paths = []
    for seed in (1, 2, 3):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        shutil.copy(bank_run / "metrics.csv", folder / "metrics.csv")
        paths.append(folder / "metrics.csv")
    edit_cell(paths[1], 0, "accuracy", "O.9537")
    labels = [dict(dataset="d", regime="mini", arch="mlp", seed=s, member="bank", expect=bank_expectation())
              for s in (1, 2, 3)]
    with pytest.raises(ReadbackError, match="seed2/metrics.csv breaks its schema") as error:
        read_runs(paths, labels)
    assert "seed1" not in str(error.value) and "seed3" not in str(error.value)
    assert "line 2" in str(error.value) and "column accuracy" in str(error.value)


def test_a_study_metrics_file_with_a_letter_is_named(tmp_path):
    path = tmp_path / "metrics.csv"
    shutil.copy(ROOT / "docs/results/quickstart/metrics.csv", path)
    edit_cell(path, 6, "accuracy", "O.9537")
    with pytest.raises(ReadbackError) as error:
        read_study_file(path)
    for part in (str(path), "line 8", "seed 1", "estimator 'static-0.7'", "column accuracy", "'O.9537'",
                 "`aggregate`", f"rm {path}"):
        assert part in str(error.value)


def test_a_study_without_dmbn_has_a_header_only_beta_star_file_and_it_reads(tmp_path):
    """A study without DMBN (an lr sweep) has no β*: ``beta_star.csv`` is the run keys and no
    rows, with no epoch columns to name (batch_figures refused it: the study stopped). A file
    with rows still needs its epoch columns."""
    from dmbn.summaries import beta_star_summary

    no_betas = pd.DataFrame(columns=["dataset", "regime", "arch", "seed", "member", "epoch", "layer",
                                     "estimator", "beta"])
    beta_star_summary(no_betas).to_csv(tmp_path / "beta_star.csv", index=False)  # what summarise writes
    read = read_study_file(tmp_path / "beta_star.csv")
    assert read.empty and {"dataset", "seed", "estimator", "layer"} <= set(read.columns)
    pd.DataFrame([{"dataset": "digits", "regime": "mini", "arch": "mlp", "seed": 1, "member": "bank",
                   "estimator": "dmbn", "layer": 1}]).to_csv(tmp_path / "beta_star.csv", index=False)
    with pytest.raises(ReadbackError, match="beta_star.csv breaks its schema"):
        read_study_file(tmp_path / "beta_star.csv")


def test_a_study_published_in_parts_reads_as_one_and_a_run_held_twice_is_refused(tmp_path):
    """Three parts of the published quickstart, one seed each (split here with pandas): read as
    one they are the whole file again, with the part of each row; a part holding a seed that
    another holds, a part that breaks the schema and (with ``every``) a part without the file are
    each refused, naming what is wrong."""
    from dmbn.readback import read_parts

    whole = pd.read_csv(ROOT / "docs/results/quickstart/metrics.csv")
    seeds = sorted(whole.seed.unique())
    assert len(seeds) >= 2
    for seed in seeds:
        (tmp_path / f"s{seed}").mkdir()
        whole[whole.seed == seed].to_csv(tmp_path / f"s{seed}" / "metrics.csv", index=False)
    parts = [tmp_path / f"s{seed}" for seed in seeds]
    read = read_parts(parts, "metrics.csv")
    pd.testing.assert_frame_equal(read.drop(columns="study").sort_values(["seed", "estimator"]).reset_index(drop=True),
                                  whole.sort_values(["seed", "estimator"]).reset_index(drop=True))
    assert (read.study == "s" + read.seed.astype(str)).all()
    assert read_parts(parts, "summaries/beta_star.csv") is None  # no part has it

    (tmp_path / "again").mkdir()
    whole[whole.seed == seeds[0]].to_csv(tmp_path / "again" / "metrics.csv", index=False)
    with pytest.raises(ReadbackError, match=rf"metrics.csv: the run digits full mlp seed {seeds[0]} is in more "
                                            rf"than one part \(again, s{seeds[0]}\)"):
        read_parts([*parts, tmp_path / "again"], "metrics.csv")
    (tmp_path / "empty").mkdir()
    assert len(read_parts([*parts, tmp_path / "empty"], "metrics.csv")) == len(whole)
    with pytest.raises(ReadbackError, match=r"empty/metrics.csv: no such file; every part"):
        read_parts([*parts, tmp_path / "empty"], "metrics.csv", every=True)
    edit_cell(parts[-1] / "metrics.csv", 0, "accuracy", "1.5")
    with pytest.raises(ReadbackError, match=rf"s{seeds[-1]}/metrics.csv breaks its schema"):
        read_parts(parts, "metrics.csv")


def test_a_ragged_csv_is_named(bank_run, tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text((bank_run / "metrics.csv").read_text() + "dmbn,0.5,0.5\n,0.5,0.5,0.5,0.5,0.5,0.5\n")
    with pytest.raises(ReadbackError, match=f"{path} is not a readable CSV file"):
        read_run_file(path)


# -- truncated .pt files name themselves and the job that rebuilds them ----------------------------------------

def pt_files(folder: Path) -> dict[str, Path]:
    """Each kind of .pt file the workflow writes, written as its job writes it."""
    data = tiny_data()
    Processed(data.x_train.to(torch.uint8), data.y_train, data.x_test.to(torch.uint8), data.y_test,
              data.num_classes).save(folder / "tensors.pt")
    torch.save({"train": torch.arange(0, 200), "validation": torch.arange(200, 240)}, folder / "split.pt")
    model = build_model("mlp", data.input_shape, data.num_classes, depth=3, width=8)
    save_atomic(model.state_dict(), folder / "model.pt")
    EstimatorStatistics(["static-0.1"], torch.zeros(1, 24), torch.ones(1, 24),
                        LayerLayout.of(model)).save(folder / "statistics.pt")
    return {"tensors.pt": folder / "tensors.pt", "split.pt": folder / "split.pt",
            "model.pt": folder / "model.pt", "statistics.pt": folder / "statistics.pt"}


def load(name: str, files: dict[str, Path]) -> None:
    """Read one file the way the workflow's jobs do."""
    if name == "tensors.pt":
        Processed.load(files[name])
    elif name == "split.pt":
        load_run_data(files["tensors.pt"], files[name], "mini")
    elif name == "statistics.pt":
        EstimatorStatistics.load(files[name])
    else:
        data = tiny_data()
        load_weights(build_model("mlp", data.input_shape, data.num_classes, depth=3, width=8), files[name])


REBUILT_BY = {"tensors.pt": "prepare", "split.pt": "split", "model.pt": "train", "statistics.pt": "train"}


@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["half", "empty"])
@pytest.mark.parametrize("name", list(REBUILT_BY))
def test_a_truncated_pt_file_names_itself_and_its_rebuild(tmp_path, name, keep):
    files = pt_files(tmp_path)
    for other in files:
        load(other, files)  # all readable before the damage
    path = files[name]
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])
    with pytest.raises(ReadbackError) as error:
        load(name, files)
    message = str(error.value)
    for part in (f"{path} cannot be read", "truncated or corrupt", f"rm {path}", f"`{REBUILT_BY[name]}`"):
        assert part in message, f"{part!r} not in:\n{message}"


class Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_model_file_holding_code_is_refused_naming_it(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weight": Payload()}, path)
    data = tiny_data()
    with pytest.raises(ReadbackError, match="Weights only load failed") as error:
        load_weights(build_model("mlp", data.input_shape, data.num_classes, depth=3, width=8), path)
    assert str(path) in str(error.value) and f"rm {path}" in str(error.value)


# -- through the real workflow -----------------------------------------------------------------------------------

RUN = "results/quickstart/runs/digits/mini/mlp/seed1/bank"
STUDY_METRICS = "results/quickstart/metrics.csv"


@pytest.mark.slow  # one real training job and three Snakemake invocations: about two minutes
def test_aggregate_refuses_a_corrupt_run_file_and_the_advice_rebuilds_one(tmp_path):
    config = quickstart_config(tmp_path, epochs=EPOCHS)
    config["studies"]["quickstart"].update(regimes=["mini"], archs=["mlp"], seeds=[1])
    path = write_config(tmp_path, config)
    snakemake(tmp_path, path, "--cores", "1", f"{RUN}/metrics.csv")

    metrics = tmp_path / RUN / "metrics.csv"
    edit_cell(metrics, 2, "accuracy", "O.9537")
    failed = snakemake(tmp_path, path, "--cores", "1", STUDY_METRICS, check=False)
    output = failed.stdout + failed.stderr + (tmp_path / "results/logs/quickstart/aggregate.log").read_text()
    assert failed.returncode != 0
    for part in (f"{RUN}/metrics.csv", "line 4", "column accuracy", "'O.9537' is not a number"):
        assert part in output, part
    assert not (tmp_path / STUDY_METRICS).exists()

    # a truncated statistics.pt: evaluate names it and the fix; following the fix rebuilds it
    statistics = tmp_path / RUN / "statistics.pt"
    statistics.write_bytes(statistics.read_bytes()[:100])
    failed = snakemake(tmp_path, path, "--cores", "1", "--forcerun", "evaluate", f"{RUN}/metrics.csv", check=False)
    assert failed.returncode != 0
    assert f"rm {RUN}/statistics.pt" in failed.stdout + failed.stderr
    statistics.unlink()
    snakemake(tmp_path, path, "--cores", "1", STUDY_METRICS)
    assert EstimatorStatistics.load(statistics).names  # rebuilt from the run's checkpoint
    assert len(read_study_file(tmp_path / STUDY_METRICS)) == 13  # the evaluate job rewrote the run's metrics


# -- run cards (card.json, read by the run_cards rule) ------------------------------------------------

def a_card() -> dict:
    segment = {"commit": "abc", "started": "2026-12-06T10:00:00+00:00", "finished": "2026-12-06T10:01:00+00:00",
               "first_epoch": 0, "last_epoch": 3, "wall_seconds": 60.0}
    return {"dmbn_version": "0.1.0", "commit": "abc", "commit_dirty": False, "python": "3.11.7",
            "torch": "2.14.1", "torchvision": "0.29.1", "snakemake": "9.27.1", "device": "cpu", "threads": 1,
            "hostname": "vm", "started": segment["started"], "finished": segment["finished"],
            "wall_seconds": 60.0, "epochs_run": 3, "resumed_from_epoch": 0, "segments": [segment]}


BAD_CARDS = [  # (field, bad value, words the error must show)
    ("threads", 0, ["field threads", "0 is less than the minimum of 1"]),
    ("wall_seconds", -1.0, ["field wall_seconds", "-1.0"]),
    ("wall_seconds", float("nan"), ["field wall_seconds", "not a finite number"]),
    ("commit_dirty", "yes", ["field commit_dirty", "'yes'"]),
    ("epochs_run", 2.5, ["field epochs_run", "2.5"]),
    ("segments", [], ["field segments", "[]"]),
]


@pytest.mark.parametrize("field, value, words", BAD_CARDS, ids=[f"{f}={v}" for f, v, _ in BAD_CARDS])
def test_a_run_card_with_a_bad_field_is_named_with_file_and_field(tmp_path, field, value, words):
    from dmbn.readback import read_card

    path = tmp_path / "card.json"
    path.write_text(json.dumps(a_card()))
    assert read_card(path)["threads"] == 1  # the good card passes
    path.write_text(json.dumps({**a_card(), field: value}))
    with pytest.raises(ReadbackError) as error:
        read_card(path)
    for word in [str(path), *words, "rm "]:
        assert word in str(error.value), str(error.value)


def test_a_segment_without_its_epochs_is_named(tmp_path):
    from dmbn.readback import read_card

    card = a_card()
    del card["segments"][0]["last_epoch"]
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    with pytest.raises(ReadbackError, match=r"field segments\.0: 'last_epoch' is a required property"):
        read_card(path)
