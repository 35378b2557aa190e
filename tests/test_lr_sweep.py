"""The lr sweep for small batches (issue #27, item 2): its shipped studies differ only in their
lrs, each the named multiple of batch_sweep's linear scaling, and docs/lr_sweep.py chooses each
batch size's lr from the ESM-set accuracy of the last epoch, never the test set."""

from __future__ import annotations

import copy
import sys

import pandas as pd
import pytest

from dmbn.config import load_strict, study_train

from conftest import ROOT

sys.path.insert(0, str(ROOT / "docs"))
import lr_sweep  # noqa: E402

MULTIPLES = {"lr_sweep_eighth": 1 / 8, "lr_sweep_quarter": 1 / 4, "lr_sweep_half": 1 / 2,
             "lr_sweep_linear": 1, "lr_sweep_double": 2}


def test_the_sweeps_studies_differ_only_in_their_lrs_each_a_multiple_of_the_linear_scaling():
    config = load_strict(ROOT / "config.yaml")
    assert sorted(lr_sweep.sweep_studies(config)) == sorted(MULTIPLES)
    common = None
    for study, multiple in MULTIPLES.items():
        spec = copy.deepcopy(config["studies"][study])
        for batch in (8, 16, 32):
            assert study_train(config, study, f"mini-b{batch}")["lr"] == pytest.approx(0.1 * batch / 100 * multiple)
        spec.pop("regime_overrides")
        common = common or spec
        assert spec == common, study
    assert common["seeds"] == [1] and common["train"]["epochs"] == 20 and common["batch_sizes"] == [8, 16, 32]


def curve(batch: int, lr: float, criterion: list[float], loss: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"dataset": "d", "regime": f"mini-b{batch}", "arch": "mlp", "seed": 1, "member": "bank",
                         "epoch": range(1, len(criterion) + 1), "train_loss": loss,
                         "train_accuracy": [1 - x for x in loss], "esm_accuracy_static-0.1": 0.5,
                         "esm_accuracy_precise": 0.6, "esm_accuracy_recalibrated": criterion, "lr": lr})


def test_the_chosen_lr_has_the_best_last_epoch_criterion_and_the_table_reads_each_curve():
    rising = [0.50, 0.60, 0.65, 0.70, 0.72, 0.74, 0.80]   # still rising: +0.20 over the last 5 epochs
    peaked = [0.70, 0.85, 0.84, 0.83, 0.82, 0.81, 0.79]   # peaked at epoch 2, ends lower than rising
    flat = [0.60] * 7
    curves = pd.concat([curve(8, 0.002, rising, [1.0] * 6 + [0.4]), curve(8, 0.008, peaked, [0.9] * 7),
                        curve(16, 0.004, flat, [0.5] * 7), curve(16, 0.016, peaked, [0.3] * 7)])
    table = lr_sweep.sweep_table(curves).set_index(["B", "lr"])
    assert table.loc[(8, 0.002), "change over the last 5 epochs"] == pytest.approx(0.80 - 0.60)
    assert table.loc[(8, 0.008), "peak epoch"] == 2 and table.loc[(8, 0.008), "peak"] == 0.85
    assert table.loc[(8, 0.002), "train loss"] == 0.4 and table.loc[(8, 0.002), "ESM-set accuracy, recalibrated"] == 0.80
    chosen = lr_sweep.choices(table.reset_index()).set_index("B")
    # the last epoch decides, not the peak: 0.80 > 0.79 at B = 8; 0.79 > 0.60 at B = 16
    assert chosen.lr.to_dict() == {8: 0.002, 16: 0.016}
    assert chosen.loc[8, "train loss"] == 0.4
