import pytest
import pandas as pd

from dmbn.summaries import (beta_star_summary, esm_last_epoch_summary, training_curves_summary,
                            training_last_epoch_summary)


def test_beta_star_summary_puts_each_epoch_of_a_layer_in_one_row():
    betas = pd.DataFrame({"dataset": "d", "regime": "mini", "arch": "mlp", "seed": [1, 1, 1, 1, 2, 2],
                          "epoch": [1, 1, 2, 2, 1, 2], "layer": [1, 2, 1, 2, 1, 1],
                          "beta": [0.1, 0.2, 0.3, 0.4, 0.9, 0.8]})
    wide = beta_star_summary(betas)
    assert list(wide.columns) == ["dataset", "regime", "arch", "seed", "layer", "e1", "e2"]
    row = wide[(wide.seed == 1) & (wide.layer == 2)].iloc[0]
    assert (row.e1, row.e2) == (0.2, 0.4)
    assert wide[wide.seed == 2][["e1", "e2"]].values.tolist() == [[0.9, 0.8]]


def test_esm_last_epoch_summary_keeps_only_each_runs_last_epoch():
    # run 1 ends at epoch 2, run 2 at epoch 1 (a shorter run): each keeps its own last epoch
    esm = pd.DataFrame({"dataset": "d", "regime": "full", "arch": "mlp", "seed": [1] * 4 + [2] * 2,
                        "epoch": [1, 1, 2, 2, 1, 1], "layer": [1, 2, 1, 2, 1, 2],
                        "estimator": "dmbn", "esm_mu": [9.0, 9.0, 1.5, 2.5, 3.0, 4.0],
                        "esm_sigma": 0.0})
    wide = esm_last_epoch_summary(esm)
    assert wide[["seed", "epoch", "l1", "l2"]].values.tolist() == [[1, 2, 1.5, 2.5], [2, 1, 3.0, 4.0]]


def test_beta_star_summary_keeps_each_choosing_kind_apart():
    betas = pd.DataFrame({"dataset": "d", "regime": "mini", "arch": "mlp", "seed": 1, "epoch": [1, 1, 2, 2],
                          "layer": 1, "estimator": ["dmbn", "dmbn-sigma"] * 2, "beta": [0.1, 0.9, 0.2, 0.8]})
    wide = beta_star_summary(betas)
    assert list(wide.columns) == ["dataset", "regime", "arch", "seed", "estimator", "layer", "e1", "e2"]
    assert wide.set_index("estimator")[["e1", "e2"]].loc[["dmbn", "dmbn-sigma"]].values.tolist() == [[0.1, 0.2], [0.9, 0.8]]


def test_training_last_epoch_summary_keeps_each_runs_final_loss_and_accuracy():
    # seed 1 trained 3 epochs, seed 2 stopped after 2 (say, a shorter config): each keeps its own
    history = pd.DataFrame({"dataset": "d", "regime": "mini", "arch": "mlp-bnbfn", "seed": [1, 1, 1, 2, 2],
                            "epoch": [1, 2, 3, 1, 2], "train_loss": [2.0, 1.0, 0.5, 2.2, 1.8],
                            "train_accuracy": [0.3, 0.6, 0.9, 0.2, 0.19], "esm_accuracy_dmbn": 0.5})
    last = training_last_epoch_summary(history)
    assert list(last.columns) == ["dataset", "regime", "arch", "seed", "epoch", "train_loss", "train_accuracy"]
    assert last[["seed", "epoch", "train_loss", "train_accuracy"]].values.tolist() == [[1, 3, 0.5, 0.9], [2, 2, 1.8, 0.19]]


def test_training_curves_keep_every_epoch_of_every_run_in_order():
    # the runs' histories as read back, run 2 first and epochs out of order
    history = pd.DataFrame({"dataset": "d", "regime": "mini", "arch": "mlp", "seed": [2, 2, 1, 1, 1],
                            "member": "bank", "epoch": [2, 1, 3, 1, 2], "train_loss": [0.4, 0.9, 0.1, 1.0, 0.5],
                            "train_accuracy": [0.8, 0.6, 0.97, 0.5, 0.7],
                            "esm_accuracy_recalibrated": [0.79, 0.61, 0.9, 0.55, 0.72]})
    curves = training_curves_summary(history)
    assert curves[["seed", "epoch", "train_loss", "esm_accuracy_recalibrated"]].values.tolist() == [
        [1, 1, 1.0, 0.55], [1, 2, 0.5, 0.72], [1, 3, 0.1, 0.9], [2, 1, 0.9, 0.61], [2, 2, 0.4, 0.79]]
    assert list(curves.columns[:6]) == ["dataset", "regime", "arch", "seed", "member", "epoch"]


def test_precise_spread_summary_reads_the_runs_that_wrote_it_and_checks_each_file(tmp_path):
    from dmbn.readback import ReadbackError, read_study_file
    from dmbn.runs import read_present_runs
    from dmbn.summaries import precise_spread_summary

    def write(seed, rows):
        path = tmp_path / f"seed{seed}" / "precise_spread.csv"
        path.parent.mkdir()
        pd.DataFrame(rows, columns=["layer", "batch_size", "batches", "var_of_batch_means", "pooled_var",
                                    "ratio"]).to_csv(path, index=False)
        return path

    labels = [dict(dataset="d", regime="mini-b16", arch="mlp", seed=s, member="bank") for s in (1, 2, 3)]
    paths = [write(1, [[2, 16.0, 200, 0.02, 16.0, 0.02], [1, 16.0, 200, 180.0, 2900.0, 0.993]]),
             tmp_path / "seed2" / "precise_spread.csv",  # a run without PreciseBN wrote none
             write(3, [[1, 16.0, 200, 170.0, 2950.0, 0.922]])]
    summary = precise_spread_summary(read_present_runs(paths, labels))
    assert summary[["seed", "layer", "ratio"]].values.tolist() == [[1, 1, 0.993], [1, 2, 0.02], [3, 1, 0.922]]
    summary.to_csv(tmp_path / "precise_spread.csv", index=False)
    assert len(read_study_file(tmp_path / "precise_spread.csv")) == 3  # the published summary's schema
    # no run with the file: an empty summary with its header, which still reads back
    precise_spread_summary(read_present_runs(paths[1:2], labels[1:2])).to_csv(tmp_path / "precise_spread.csv",
                                                                                index=False)
    assert read_study_file(tmp_path / "precise_spread.csv").empty
    # a run's file with a negative variance is refused, naming the file
    write(4, [[1, 16.0, 200, -1.0, 2950.0, 0.9]])
    with pytest.raises(ReadbackError, match="seed4/precise_spread.csv"):
        read_present_runs([tmp_path / "seed4" / "precise_spread.csv"], labels[:1])
