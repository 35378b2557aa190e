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

MULTIPLES = {"lr_sweep_sixteenth": 1 / 16, "lr_sweep_eighth": 1 / 8, "lr_sweep_quarter": 1 / 4,
             "lr_sweep_half": 1 / 2, "lr_sweep_linear": 1, "lr_sweep_double": 2}
BATCHES: dict[str, list[int]] = {}  # a study at other batch sizes than 8, 16, 32


def test_the_sweeps_studies_differ_only_in_their_lrs_each_a_multiple_of_the_linear_scaling():
    config = load_strict(ROOT / "config.yaml")
    assert sorted(lr_sweep.sweep_studies(config)) == sorted(MULTIPLES)
    common = None
    for study, multiple in MULTIPLES.items():
        spec = copy.deepcopy(config["studies"][study])
        batches = BATCHES.get(study, [8, 16, 32])
        assert spec.pop("batch_sizes") == batches, study
        for batch in batches:
            assert study_train(config, study, f"mini-b{batch}")["lr"] == pytest.approx(0.1 * batch / 100 * multiple)
        assert set(spec.pop("regime_overrides")) == {f"mini-b{batch}" for batch in batches}
        common = common or spec
        assert spec == common, study
    assert common["seeds"] == [1] and common["train"]["epochs"] == 20


def curve(batch: int, lr: float, criterion: float, loss: list[float]) -> pd.DataFrame:
    """One run's training_curves.csv rows as the workflow writes them: the default EMA scored on
    the ESM set every epoch, PreciseBN and the recalibrated statistics at the last epoch only
    (they are computed once training ends)."""
    last = [float("nan")] * (len(loss) - 1)
    return pd.DataFrame({"dataset": "d", "regime": f"mini-b{batch}", "arch": "mlp", "seed": 1, "member": "bank",
                         "epoch": range(1, len(loss) + 1), "train_loss": loss,
                         "train_accuracy": [1 - x for x in loss], "esm_accuracy_static-0.1": 0.5,
                         "esm_accuracy_precise": [*last, 0.6], "esm_accuracy_recalibrated": [*last, criterion],
                         "lr": lr})


def test_the_chosen_lr_has_the_best_last_epoch_criterion_and_the_table_reads_each_curve():
    falling = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]   # still falling: -0.4 over the last 5 epochs
    flat = [0.9] * 7
    curves = pd.concat([curve(8, 0.002, 0.80, falling), curve(8, 0.008, 0.79, flat),
                        curve(16, 0.004, 0.60, flat), curve(16, 0.016, 0.79, [0.3] * 7)])
    table = lr_sweep.sweep_table(curves).set_index(["B", "lr"])
    assert table.loc[(8, 0.002), lr_sweep.LATE_COLUMN] == pytest.approx(0.4 - 0.9)  # epoch 7 − epoch 2
    assert table.loc[(8, 0.008), lr_sweep.LATE_COLUMN] == 0
    assert table.loc[(8, 0.002), "train loss"] == 0.4 and table.loc[(8, 0.002), "ESM-set accuracy, recalibrated"] == 0.80
    assert table.loc[(8, 0.002), "ESM-set accuracy, PreciseBN"] == 0.6  # the last epoch's, not a NaN
    chosen = lr_sweep.choices(table.reset_index()).set_index("B")
    assert chosen.lr.to_dict() == {8: 0.002, 16: 0.016}  # 0.80 > 0.79 at B = 8; 0.79 > 0.60 at B = 16
    assert chosen.loc[8, "train loss"] == 0.4


def test_the_sweep_table_prints_integers_as_integers_and_the_lr_as_configured():
    table = lr_sweep.sweep_table(pd.concat([curve(8, 0.002, 0.80, [1.0, 0.4]), curve(16, 0.016, 0.79, [0.3] * 7)]))
    rows = [line.split("|")[1:-1] for line in lr_sweep.markdown(table).splitlines()[2:]]
    assert [cell.strip() for cell in rows[0][:6]] == ["8", "0.002", "1", "2", "0.4000", "0.6000"]
    assert rows[0][-1].strip() == "–"  # a run shorter than LATE + 1 epochs has no late change
    assert [cell.strip() for cell in rows[1][:4]] == ["16", "0.016", "1", "7"]


def test_the_criterion_at_b100_is_printed_from_the_reference_studys_last_epoch(tmp_path, capsys):
    """Beside the sweep, the criterion at B = 100 over the bank runs of the criterion reference's
    last epoch (mean and std by hand); another batch size and earlier epochs play no part."""
    sweep = tmp_path / "lr_sweep_half" / "summaries"
    sweep.mkdir(parents=True)
    curve(8, 0.004, 0.85, [0.5] * 6).drop(columns="lr").to_csv(sweep / "training_curves.csv", index=False)
    ref = tmp_path / "ref" / "summaries"
    ref.mkdir(parents=True)
    runs = [curve(100, 0.1, criterion, [0.3] * 6).assign(seed=seed) for seed, criterion in ((1, 0.87), (2, 0.89))]
    runs.append(curve(16, 0.016, 0.10, [0.3] * 6))  # not B = 100: left out
    pd.concat(runs).drop(columns="lr").to_csv(ref / "training_curves.csv", index=False)
    lr_sweep.main(["--published", str(tmp_path), "--criterion-reference", "ref"])
    out = capsys.readouterr().out
    assert "ref at B = 100 (epoch 6), the criterion (esm_accuracy_recalibrated): 0.8800 ± 0.0141 (n = 2)" in out


@pytest.mark.skipif(not (ROOT / "docs/results/lr_sweep_sixteenth").exists(), reason="the lr sweep is not published")
def test_the_small_batch_study_trains_at_the_lrs_the_published_sweep_chose():
    """small_batch (issue #27, item 2), each of its parts: at every batch size the lr that
    docs/lr_sweep.py chooses from the published sweep, the rows that separate the explanations,
    and at least 5 seeds over its parts."""
    from dmbn.config import expand_parts, study_regimes

    config = load_strict(ROOT / "config.yaml")
    studies = [s for s in lr_sweep.sweep_studies(config) if (ROOT / "docs/results" / s).is_dir()]
    chosen = lr_sweep.choices(lr_sweep.sweep_table(lr_sweep.sweep_curves(ROOT / "docs/results", config, studies)))
    parts = expand_parts(config)["small_batch"]
    assert len(parts) >= 5
    for part in parts:
        lrs = {int(r.removeprefix("mini-b")): study_train(config, part, r)["lr"] for r in study_regimes(config, part)}
        assert lrs == pytest.approx(dict(zip(chosen.B, chosen.lr))), part
        assert {"static-biased", "precise-mean-unbiased", "precise-mean-biased"} <= set(
            study_train(config, part, "mini-b8")["estimators"])
