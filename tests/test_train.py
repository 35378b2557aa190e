import dataclasses
import json
import os
import re

import pandas as pd
import pytest
import torch

from dmbn.evaluate import evaluate_estimators, predict
from dmbn.models import build_model
from dmbn.checkpoints import CheckpointError
from dmbn.train import DivergenceError, Run, TrainConfig, train_run, write_run

CONFIG = TrainConfig(epochs=3, batch_size=40, precise_batches=4, seed=7)


def fresh_model(seed: int = 7):
    torch.manual_seed(seed)
    return build_model("mlp", (1, 1, 12), 3, depth=4, width=16)


class Interrupt(Exception):
    pass


def stop_after(epoch: int):
    def hook(done: int) -> None:
        if done == epoch:
            raise Interrupt
    return hook


def run_files(folder) -> dict[str, bytes]:
    """A run's files, but the run card (times and segments differ between processes)."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if name != "card.json"}


def card(folder) -> dict:
    return json.loads((folder / "card.json").read_text())


def test_run_writes_the_documented_files(data, tmp_path):
    result = train_run(fresh_model(), data, CONFIG)
    write_run(result, tmp_path)
    assert list(pd.read_csv(tmp_path / "esm.csv").columns) == ["epoch", "layer", "estimator", "esm_mu", "esm_sigma"]
    assert list(pd.read_csv(tmp_path / "betas.csv").columns) == ["epoch", "layer", "estimator", "beta"]
    history = pd.read_csv(tmp_path / "history.csv")
    assert {"epoch", "train_loss", "train_accuracy", "esm_accuracy_dmbn"} <= set(history.columns)
    esm = pd.read_csv(tmp_path / "esm.csv")
    assert set(esm.estimator) == {f"static-{b / 10:g}" for b in range(1, 10)} | {"cma", "dmbn", "precise", "recalibrated"}
    assert sorted(esm.layer.unique()) == [1, 2, 3, 4] and sorted(esm.epoch.unique()) == [1, 2, 3]
    betas = pd.read_csv(tmp_path / "betas.csv")
    assert len(betas) == 3 * 4 and betas.beta.isin([b / 10 for b in range(1, 10)]).all()
    assert {"model.pt", "statistics.pt", "layers.csv"} <= set(os.listdir(tmp_path))


def test_resumed_run_is_bitwise_identical_to_an_uninterrupted_one(data, tmp_path):
    write_run(train_run(fresh_model(), data, CONFIG, tmp_path / "a.ckpt"), tmp_path / "straight")
    with pytest.raises(Interrupt):
        train_run(fresh_model(), data, CONFIG, tmp_path / "b.ckpt", on_epoch=stop_after(1))
    with pytest.raises(Interrupt):  # a second interruption, resumed from epoch 1
        train_run(fresh_model(), data, CONFIG, tmp_path / "b.ckpt", on_epoch=stop_after(2))
    # the resumed process starts from another initialisation: the checkpoint must override it
    write_run(train_run(fresh_model(seed=99), data, CONFIG, tmp_path / "b.ckpt"), tmp_path / "resumed")
    assert run_files(tmp_path / "straight") == run_files(tmp_path / "resumed")
    segments = [(s["first_epoch"], s["last_epoch"]) for s in card(tmp_path / "resumed")["segments"]]
    assert segments == [(0, 1), (1, 2), (2, 3)]
    assert [(s["first_epoch"], s["last_epoch"]) for s in card(tmp_path / "straight")["segments"]] == [(0, 3)]


def test_run_card_says_what_produced_the_run(data, tmp_path):
    import platform
    import subprocess

    write_run(train_run(fresh_model(), data, CONFIG), tmp_path)
    written = card(tmp_path)
    head = subprocess.run(["git", "-C", os.path.dirname(__file__), "rev-parse", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    assert written["commit"] == (head or "unknown")
    assert written["python"] == platform.python_version() and written["torch"] == str(torch.__version__)
    assert written["device"] == "cpu" and written["threads"] == torch.get_num_threads()
    assert written["epochs_run"] == 3 and written["resumed_from_epoch"] == 0
    assert written["wall_seconds"] == pytest.approx(written["segments"][0]["wall_seconds"])
    assert written["started"] <= written["finished"]


def interrupted(data, checkpoint, cfg=CONFIG, model=None, epoch: int = 1) -> None:
    with pytest.raises(Interrupt):
        train_run(model or fresh_model(), data, cfg, checkpoint, on_epoch=stop_after(epoch))


def set_aside(checkpoint) -> list:
    """Checkpoints set aside: under their identity's hash, or as stale (dmbn.checkpoints)."""
    return sorted(checkpoint.parent.glob(checkpoint.name + ".*"))


@pytest.mark.parametrize("change", ["lr", "seed", "data", "width", "batch_free", "threads"])
def test_checkpoint_of_another_run_is_set_aside_and_the_run_starts_over(data, tmp_path, change, caplog):
    checkpoint = tmp_path / "c.ckpt"
    interrupted(data, checkpoint)
    cfg, model, run_data = CONFIG, fresh_model, data
    if change in ("lr", "seed"):
        cfg = dataclasses.replace(CONFIG, **{change: {"lr": 0.05, "seed": 8}[change]})
    elif change == "data":  # another split or data set: same shapes, other samples
        run_data = dataclasses.replace(data, x_train=data.x_train.flip(0), y_train=data.y_train.flip(0))
    elif change == "width":
        model = lambda: (torch.manual_seed(7), build_model("mlp", (1, 1, 12), 3, depth=4, width=8))[1]
    elif change == "batch_free":
        model = lambda: (torch.manual_seed(7), build_model("mlp-bnbfn", (1, 1, 12), 3, depth=4, width=16,
                                                           batch_free="groupnorm", groups=2))[1]
    threads = torch.get_num_threads()
    try:
        if change == "threads":
            torch.set_num_threads(threads + 1)
        result = train_run(model(), run_data, cfg, checkpoint)
        reference = train_run(model(), run_data, cfg)
    finally:
        torch.set_num_threads(threads)
    pd.testing.assert_frame_equal(result.history, reference.history)
    assert len(set_aside(checkpoint)) == 1  # kept, not deleted
    assert any(str(set_aside(checkpoint)[0]) in r.message and "starting over" in r.message for r in caplog.records)


def test_more_epochs_continue_a_finished_run_exactly(data, tmp_path):
    short = dataclasses.replace(CONFIG, epochs=2)
    train_run(fresh_model(), data, short, tmp_path / "e.ckpt")
    write_run(train_run(fresh_model(), data, CONFIG, tmp_path / "e.ckpt"), tmp_path / "extended")
    write_run(train_run(fresh_model(), data, CONFIG), tmp_path / "straight")
    assert run_files(tmp_path / "extended") == run_files(tmp_path / "straight")
    assert not set_aside(tmp_path / "e.ckpt")


def test_fewer_epochs_than_the_checkpoint_start_over(data, tmp_path):
    train_run(fresh_model(), data, CONFIG, tmp_path / "f.ckpt")
    short = dataclasses.replace(CONFIG, epochs=2)
    result = train_run(fresh_model(), data, short, tmp_path / "f.ckpt")
    assert list(result.history.epoch) == [1, 2] and len(set_aside(tmp_path / "f.ckpt")) == 1


def test_truncated_checkpoint_is_set_aside_named_in_the_log(data, tmp_path, caplog):
    checkpoint = tmp_path / "t.ckpt"
    interrupted(data, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    result = train_run(fresh_model(), data, CONFIG, checkpoint)
    assert list(result.history.epoch) == [1, 2, 3]
    [aside] = set_aside(checkpoint)
    assert len(aside.read_bytes()) == 1000
    assert any(str(checkpoint) in r.message and "unreadable" in r.message for r in caplog.records)


def test_checkpoint_writes_leave_no_temporary_files(data, tmp_path):
    train_run(fresh_model(), data, CONFIG, tmp_path / "w.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.ckpt"]


def test_separate_run_with_beta_equals_the_banks_static_estimator(data):
    bank = train_run(fresh_model(), data, CONFIG)
    separate = train_run(fresh_model(), data, TrainConfig(**{**CONFIG.__dict__, "separate_beta": 0.3}))
    for p, q in zip(bank.model.parameters(), separate.model.parameters()):
        assert torch.equal(p, q)  # same trajectory, to the bit
    assert separate.statistics.names == ["static-0.3"]
    torch.testing.assert_close(bank.statistics.of("static-0.3"), separate.statistics.of("static-0.3"),
                               rtol=1e-5, atol=1e-6)
    with bank.statistics.use(bank.model, "static-0.3"):
        banked = predict(bank.model, data.x_test)
    with separate.statistics.use(separate.model, "static-0.3"):
        alone = predict(separate.model, data.x_test)
    assert torch.equal(banked, alone)
    # evaluation: the bank's static-0.3 row is the separate run's only row, and is the metrics of
    # the predictions above
    rows = evaluate_estimators(bank.model, bank.statistics, data.x_test, data.y_test, 3).set_index("estimator")
    assert rows.index.tolist() == bank.statistics.names
    alone_rows = evaluate_estimators(separate.model, separate.statistics, data.x_test, data.y_test, 3)
    assert alone_rows.estimator.tolist() == ["static-0.3"]
    pd.testing.assert_series_equal(alone_rows.set_index("estimator").loc["static-0.3"], rows.loc["static-0.3"])
    assert rows.loc["static-0.3", "accuracy"] == pytest.approx(float((alone == data.y_test).float().mean()))


def test_divergence_names_epoch_step_and_loss(data, tmp_path):
    cfg = TrainConfig(**{**CONFIG.__dict__, "lr": 1e12})
    with pytest.raises(DivergenceError, match=r"epoch 1, step \d+: loss = (nan|inf)"):
        train_run(fresh_model(), data, cfg, tmp_path / "d.ckpt")
    assert not (tmp_path / "d.ckpt").exists()  # nothing marked complete


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_tampered_checkpoint_with_a_pickled_callable_is_refused(data, tmp_path):
    checkpoint = tmp_path / "e.ckpt"
    with pytest.raises(Interrupt):
        train_run(fresh_model(), data, CONFIG, checkpoint, on_epoch=stop_after(1))
    state = torch.load(checkpoint, weights_only=True)
    state["history"].append(Evil())
    torch.save(state, checkpoint)
    with pytest.raises(CheckpointError) as error:
        train_run(fresh_model(), data, CONFIG, checkpoint)
    message = str(error.value)
    assert message.startswith(f"checkpoint {checkpoint} holds objects other than tensors")
    assert f"rm {checkpoint}" in message and checkpoint.exists()  # the advice, and nothing deleted


def test_checkpoint_from_before_a_new_setting_existed_is_resumed(data, tmp_path):
    checkpoint = tmp_path / "n.ckpt"
    interrupted(data, checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    del state["identity"]["train"]["channels_last"]  # written before this setting was added
    torch.save(state, checkpoint)
    result = train_run(fresh_model(), data, CONFIG, checkpoint)
    assert not set_aside(checkpoint)
    pd.testing.assert_frame_equal(result.history, train_run(fresh_model(), data, CONFIG).history)
    checkpoint = tmp_path / "m.ckpt"
    interrupted(data, checkpoint)  # ... but not by a run that changed it
    state = torch.load(checkpoint, weights_only=True)
    del state["identity"]["train"]["channels_last"]
    torch.save(state, checkpoint)
    train_run(fresh_model(), data, dataclasses.replace(CONFIG, channels_last=True), checkpoint)
    assert len(set_aside(checkpoint)) == 1


@pytest.mark.slow  # compiling the forward and backward graphs takes ~20 s on a CPU
def test_compiled_training_step_feeds_the_bank_as_the_eager_one_does(data):
    # full batch: one step per epoch, so epoch 1 compares one compiled step with one eager step
    # (equal to float rounding; later steps amplify rounding like any change of kernels)
    config = TrainConfig(epochs=2, batch_size=None, precise_batches=1, seed=7)
    eager = Run(fresh_model(), data, config)
    compiled = Run(fresh_model(), data, TrainConfig(**{**config.__dict__, "compile": True}))
    rows = [run.next_epoch() for run in (eager, compiled)]
    assert rows[1]["train_loss"] == pytest.approx(rows[0]["train_loss"], rel=1e-6)
    torch.testing.assert_close(compiled.holder.ema_mean, eager.holder.ema_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled.holder.ema_var, eager.holder.ema_var, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled.holder.statistics("dmbn"), eager.holder.statistics("dmbn"),
                               rtol=1e-5, atol=1e-6)
    compiled.next_epoch()  # the compiled model trains on after the ESM pass swapped its BN layers
    assert sorted({row["epoch"] for row in compiled.esm_rows}) == [1, 2]
    assert len(compiled.history_rows) == 2 and compiled.holder.estimator("cma").steps == 2


@pytest.mark.slow  # compiling takes ~10 s on a CPU
def test_a_compiled_step_with_a_counting_estimator_is_compiled_once_not_every_step(data):
    """moment-β and static-biased-β need each batch's values per channel, so the bank keeps its
    BN hooks after the first step. A per-layer call count in those hooks, a Python int that
    changes every step, failed Dynamo's guard every step: the step was recompiled up to Dynamo's
    limit (8) and then ran eagerly. Counted once, then only the values per channel: one graph
    for the first step (counting) and one for every step after it."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    config = TrainConfig(epochs=1, batch_size=8, precise_batches=1, seed=7, compile=True,
                         estimators=("static", "moment", "static-biased"))
    run = Run(fresh_model(), data, config)
    run.train_epoch()
    assert len(data.y_train) // 8 >= 20  # steps enough for the old guard to hit the limit (8)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2
    # the values per channel still reach the counting estimators: 8 per batch (MLP), not the initial 2
    assert torch.equal(run.holder.estimator("moment").count, torch.full_like(run.holder.estimator("moment").count, 8.0))


# -- an ESM-set subsample (train.esm_samples) ----------------------------------------------------

def test_the_esm_subset_is_a_fixed_seeded_part_of_the_esm_set(data):
    from dmbn.train import esm_subset

    assert esm_subset(data, None, 1)[0] is data.x_esm and esm_subset(data, len(data.y_esm), 1)[0] is data.x_esm
    k = len(data.y_esm) // 3
    x, y = esm_subset(data, k, 1)
    rows = [int(torch.nonzero((data.x_esm == row).all(dim=tuple(range(1, row.dim() + 1))))[0]) for row in x]
    assert len(x) == len(y) == k and rows == sorted(set(rows))  # k distinct samples, original order
    assert torch.equal(y, data.y_esm[rows])
    assert torch.equal(esm_subset(data, k, 1)[0], x) and not torch.equal(esm_subset(data, k, 2)[0], x)


def test_a_run_on_an_esm_subsample_measures_and_recalibrates_on_that_subsample(data):
    from dmbn.esm import measure_esm
    from dmbn.train import esm_subset

    k = len(data.y_esm) // 2
    cfg = dataclasses.replace(CONFIG, esm_samples=k, epochs=2)
    run = Run(fresh_model(), data, cfg)
    run.next_epoch()
    x, y = esm_subset(data, k, cfg.seed)
    direct = measure_esm(run.model, run.holder.stage_statistics("epoch"), x, y, cfg.esm_chunk)
    logged = pd.DataFrame(run.esm_rows)
    ours = logged[logged.estimator == "static-0.1"].sort_values("layer").esm_mu.to_numpy()
    theirs = pd.DataFrame(direct.rows(1))
    theirs = theirs[theirs.estimator == "static-0.1"].sort_values("layer").esm_mu.to_numpy()
    assert ours.tolist() == pytest.approx(theirs.tolist(), rel=1e-12)
    whole = pd.DataFrame(measure_esm(run.model, run.holder.stage_statistics("epoch"), data.x_esm, data.y_esm,
                                     cfg.esm_chunk).rows(1))
    assert whole[whole.estimator == "static-0.1"].sort_values("layer").esm_mu.tolist() != pytest.approx(ours.tolist())
    run.next_epoch()  # the last epoch: the recalibrated oracle is measured on the same subsample
    final = pd.DataFrame(run.esm_rows)
    assert (final[final.estimator == "recalibrated"].esm_mu.abs() < 1e-9).all()


def test_channels_last_trains_a_convolutional_network_on_cpu_as_nchw_does(data):
    # the setting used to apply on CUDA only; on CPU it is a quarter faster (benchmarks/RESULTS.md)
    # and must change nothing but the kernels' summation order
    def resnet():
        torch.manual_seed(7)
        return build_model("resnet50", (1, 1, 12), 3, resnet_blocks=(1, 1, 1, 1), resnet_channels=8)

    config = TrainConfig(epochs=1, batch_size=None, precise_batches=1, seed=7)
    nchw = Run(resnet(), data, config)
    nhwc = Run(resnet(), data, dataclasses.replace(config, channels_last=True))
    weight = nhwc.model.layer1[0].conv2.weight  # [8, 8, 3, 3]: the two layouts differ
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert nchw.model.layer1[0].conv2.weight.is_contiguous()
    rows = [run.next_epoch() for run in (nchw, nhwc)]
    assert rows[1]["train_loss"] == pytest.approx(rows[0]["train_loss"], rel=1e-5)
    torch.testing.assert_close(nhwc.holder.statistics("dmbn"), nchw.holder.statistics("dmbn"), rtol=1e-4, atol=1e-5)
    esm = [pd.DataFrame(run.esm_rows).set_index(["estimator", "layer"]).esm_mu for run in (nchw, nhwc)]
    assert esm[1].to_numpy() == pytest.approx(esm[0].loc[esm[1].index].to_numpy(), rel=1e-3, abs=1e-6)
