import os
import pickle

import pandas as pd
import pytest
import torch

from dmbn.evaluate import evaluate_estimators, predict
from dmbn.models import build_model
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
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_run_writes_the_documented_files(data, tmp_path):
    result = train_run(fresh_model(), data, CONFIG)
    write_run(result, tmp_path)
    assert list(pd.read_csv(tmp_path / "esm.csv").columns) == ["epoch", "layer", "estimator", "esm_mu", "esm_sigma"]
    assert list(pd.read_csv(tmp_path / "betas.csv").columns) == ["epoch", "layer", "beta"]
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


def test_checkpoint_of_other_settings_is_not_resumed(data, tmp_path):
    with pytest.raises(Interrupt):
        train_run(fresh_model(), data, CONFIG, tmp_path / "c.ckpt", on_epoch=stop_after(1))
    other = TrainConfig(**{**CONFIG.__dict__, "lr": 0.05})
    result = train_run(fresh_model(), data, other, tmp_path / "c.ckpt")
    reference = train_run(fresh_model(), data, other)
    pd.testing.assert_frame_equal(result.history, reference.history)


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
    rows = evaluate_estimators(bank.model, bank.statistics, data.x_test, data.y_test, 3)
    assert len(rows) == 13 and rows.accuracy.between(0, 1).all()


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
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        train_run(fresh_model(), data, CONFIG, checkpoint)


def test_checkpoint_from_before_a_new_setting_existed_is_resumed():
    import json

    old = json.loads(CONFIG.fingerprint())
    del old["channels_last"]  # a checkpoint written before this setting was added
    old["esm_stacked"] = False  # and one with a setting dmbn no longer has
    assert CONFIG.matches(json.dumps(old))
    assert not TrainConfig(**{**CONFIG.__dict__, "channels_last": True}).matches(json.dumps(old))
    assert not TrainConfig(**{**CONFIG.__dict__, "lr": 0.2}).matches(CONFIG.fingerprint())


@pytest.mark.slow  # compiling the forward and backward graphs takes ~20 s on a CPU
def test_compiled_training_step_feeds_the_bank_as_the_eager_one_does(data):
    # full batch: one step per epoch, so epoch 1 compares one compiled step with one eager step
    # (equal to float rounding; later steps amplify rounding like any change of kernels)
    config = TrainConfig(epochs=2, batch_size=None, precise_batches=1, seed=7)
    eager = Run(fresh_model(), data, config)
    compiled = Run(fresh_model(), data, TrainConfig(**{**config.__dict__, "compile": True}))
    rows = [run.next_epoch() for run in (eager, compiled)]
    assert rows[1]["train_loss"] == pytest.approx(rows[0]["train_loss"], rel=1e-6)
    torch.testing.assert_close(compiled.bank.ema_mean, eager.bank.ema_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled.bank.ema_var, eager.bank.ema_var, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled.bank.dmbn_mean, eager.bank.dmbn_mean, rtol=1e-5, atol=1e-6)
    compiled.next_epoch()  # the compiled model trains on after the ESM pass swapped its BN layers
    assert sorted({row["epoch"] for row in compiled.esm_rows}) == [1, 2]
    assert len(compiled.history_rows) == 2 and compiled.bank.cma_steps == 2
