"""The estimators beyond the thesis, each against a direct computation: a plain loop over the
batches, torch's own BatchNorm, or a hand formula — never the bank's code."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmbn.bank import EstimatorBank
from dmbn.evaluate import evaluate_estimators, predict_with_batch_statistics, prediction_batch_sizes
from dmbn.models import build_model
from dmbn.names import ESTIMATOR_KINDS, STATIC_BETAS
from dmbn.statistics import EstimatorStatistics, LayerLayout, read_buffers
from dmbn.train import TrainConfig, statistics_holder, train_run, write_run

from test_train import interrupted


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", (1, 1, 12), 3, depth=4, width=16)


def train_steps(model, bank, data, steps: int, batch: int = 20, generator=None, record=None):
    """Plain SGD steps; ``record`` collects the batch statistics BN wrote (momentum 1: raw)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for step in range(steps):
        index = (torch.randint(0, len(data.y_train), (batch,), generator=generator) if generator is not None
                 else torch.arange(step * batch, (step + 1) * batch) % len(data.y_train))
        loss = F.cross_entropy(model(data.x_train[index]), data.y_train[index])
        opt.zero_grad()
        loss.backward()
        opt.step()
        bank.observe()
        if record is not None:
            record.append(read_buffers(model))


# -- horizon-matched EMAs --------------------------------------------------------------------------

@pytest.mark.parametrize("kappa", [0.08, 1.0, 3.7])
def test_horizon_ema_is_torch_batchnorm_at_momentum_one_minus_one_minus_beta_to_the_kappa(data, kappa):
    banked, plain = small_mlp(), small_mlp()
    beta = 0.3
    for m in plain.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = 1 - (1 - beta) ** kappa  # the "How to Scale Your EMA" rule, by hand
    bank = EstimatorBank(banked, betas=(0.1, beta), estimators=("static", "horizon"), kappa=kappa)
    bank.start_epoch()
    train_steps(banked, bank, data, 12)
    train_steps(plain, _NoBank(), data, 12)
    torch.testing.assert_close(bank.statistics("horizon-0.3"), read_buffers(plain), rtol=1e-5, atol=1e-6)


class _NoBank:
    def observe(self) -> None:
        pass


def test_horizon_kappa_is_batch_size_over_the_reference_and_full_batch_uses_every_sample(data):
    mini = statistics_holder(small_mlp(), TrainConfig(batch_size=40, reference_batch_size=100,
                                                      estimators=("static", "horizon")), 240)
    full = statistics_holder(small_mlp(), TrainConfig(batch_size=None, estimators=("static", "horizon")), 240)
    assert mini.estimator("horizon").kappa == pytest.approx(0.4)
    assert full.estimator("horizon").kappa == pytest.approx(2.4)  # 240 samples / 100
    assert full.estimator("horizon").momenta()[0] == pytest.approx(1 - 0.9 ** 2.4)


# -- moment EMAs ------------------------------------------------------------------------------------

def test_moment_ema_is_emas_of_first_and_second_moments(data):
    torch.manual_seed(0)
    linear, bn = nn.Linear(12, 5), nn.BatchNorm1d(5)
    model = nn.Sequential(nn.Flatten(), linear, bn)
    betas = (0.1, 0.5, 1.0)
    bank = EstimatorBank(model, betas=betas, estimators=("static", "moment"))
    bank.start_epoch()
    first = torch.zeros(3, 5, dtype=torch.float64)
    second = torch.ones(3, 5, dtype=torch.float64)
    sizes = [20, 20, 20, 7, 20]
    start = 0
    with torch.no_grad():
        for n in sizes:  # the batches need not share a size (a short last batch)
            x = data.x_train[start:start + n] * (1 + start / 50) + start / 40  # moving statistics
            start += n
            model.train()(x)
            bank.observe()
            h = linear(x.flatten(1)).double()  # the BN layer's input, directly
            for i, beta in enumerate(betas):
                first[i] = (1 - beta) * first[i] + beta * h.mean(0)
                second[i] = (1 - beta) * second[i] + beta * (h ** 2).mean(0)
    n = sizes[-1]
    for i, beta in enumerate(betas):
        expected_var = (second[i] - first[i] ** 2) / (1 - beta / ((2 - beta) * n))
        mean, var = bank.statistics(f"moment-{beta:g}")
        torch.testing.assert_close(mean.double(), first[i], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(var.double(), expected_var, rtol=1e-4, atol=1e-5)
    # β = 1 is the last batch's unbiased variance, PyTorch's convention
    torch.testing.assert_close(bank.statistics("moment-1")[1].double(), h.var(0, unbiased=True),
                               rtol=1e-4, atol=1e-5)


def test_moment_ema_counts_the_spatial_positions_of_conv_layers():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)
    model = nn.Sequential(conv, bn).train()
    bank = EstimatorBank(model, betas=(1.0,), estimators=("static", "moment"))
    x = torch.randn(4, 2, 5, 5) * 3 + 1
    with torch.no_grad():
        model(x)
        bank.observe()
        h = conv(x).double().transpose(0, 1).flatten(1)  # [C, samples x positions]
    torch.testing.assert_close(bank.statistics("moment-1")[1].double(), h.var(1, unbiased=True),
                               rtol=1e-4, atol=1e-5)


# -- DMBN variants ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, criterion", [
    ("dmbn", lambda mu, sigma: mu),
    ("dmbn-sigma", lambda mu, sigma: sigma),
    ("dmbn-mu-sigma", lambda mu, sigma: mu + sigma),
])
def test_dmbn_variants_replay_an_ema_with_the_beta_their_criterion_picks(data, kind, criterion):
    model = small_mlp()
    bank = EstimatorBank(model, estimators=("static", kind))
    replay_mean, replay_var = torch.zeros(64), torch.ones(64)
    generator = torch.Generator().manual_seed(1)
    for epoch in range(3):
        bank.start_epoch()
        record = []
        train_steps(model, bank, data, 6, generator=generator, record=record)
        esm_mu = torch.rand(len(STATIC_BETAS), 4, generator=generator)
        esm_sigma = torch.rand(len(STATIC_BETAS), 4, generator=generator)
        bank.finish_epoch(esm_mu, esm_sigma)
        # by hand: the criterion's argmin per layer, then the EMA step by step over the epoch
        chosen = torch.tensor([STATIC_BETAS[i] for i in criterion(esm_mu, esm_sigma).argmin(0).tolist()])
        per_channel = chosen.repeat_interleave(16)
        for mean, var in record:
            replay_mean = (1 - per_channel) * replay_mean + per_channel * mean
            replay_var = (1 - per_channel) * replay_var + per_channel * var
        torch.testing.assert_close(bank.statistics(kind), (replay_mean, replay_var), rtol=1e-5, atol=1e-6)
        assert bank.choices[kind].tolist() == [STATIC_BETAS[i] for i in criterion(esm_mu, esm_sigma).argmin(0).tolist()]


def test_dmbn_sigma_without_esm_sigma_says_so():
    bank = EstimatorBank(small_mlp(), estimators=("static", "dmbn-sigma"))
    bank.start_epoch()
    with pytest.raises(ValueError, match="dmbn-sigma chooses by ESM_σ"):
        bank.finish_epoch(torch.zeros(9, 4))


def test_causal_dmbn_applies_the_previous_epochs_beta_star_during_the_epoch(data):
    model = small_mlp()
    bank = EstimatorBank(model, estimators=("static", "dmbn-causal"))
    mean, var = torch.zeros(64), torch.ones(64)
    beta = torch.full((4,), 0.1)  # epoch 1: PyTorch's default momentum
    generator = torch.Generator().manual_seed(2)
    for epoch in range(4):
        bank.start_epoch()
        record = []
        train_steps(model, bank, data, 5, generator=generator, record=record)
        per_channel = beta.repeat_interleave(16)
        for m, v in record:  # a plain per-layer EMA, step by step
            mean = (1 - per_channel) * mean + per_channel * m
            var = (1 - per_channel) * var + per_channel * v
        # the statistics at this epoch's end exist before this epoch's ESM is known
        torch.testing.assert_close(bank.statistics("dmbn-causal"), (mean, var), rtol=1e-5, atol=1e-6)
        esm_mu = torch.rand(len(STATIC_BETAS), 4, generator=generator)
        bank.finish_epoch(esm_mu)
        beta = torch.tensor([STATIC_BETAS[i] for i in esm_mu.argmin(0).tolist()])  # for the next epoch


# -- prediction-time BN ----------------------------------------------------------------------------

def test_test_batches_split_consecutively_and_fold_a_single_last_sample():
    assert prediction_batch_sizes(101, 40) == [40, 40, 21]
    assert prediction_batch_sizes(81, 40) == [40, 41]  # one sample has no variance
    assert prediction_batch_sizes(50, None) == [50]


@pytest.mark.parametrize("batch_size", [16, None])
def test_prediction_time_bn_normalises_each_test_batch_with_its_own_statistics(batch_size):
    torch.manual_seed(0)
    linear, bn, head = nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
        bn.running_mean.fill_(3.0)  # running statistics that must not be used
    model = nn.Sequential(linear, bn, nn.ReLU(), head).eval()
    x = torch.randn(50, 6) * 2 + 1
    before = copy.deepcopy(model.state_dict())
    predicted = predict_with_batch_statistics(model, x, batch_size)
    expected = []
    with torch.no_grad():  # by hand: each batch's mean and biased variance
        for part in x.split(batch_size or 50):
            h = linear(part)
            normalised = (h - h.mean(0)) / (h.var(0, unbiased=False) + bn.eps).sqrt() * bn.weight + bn.bias
            expected.append(head(normalised.relu()).argmax(1))
    assert torch.equal(predicted, torch.cat(expected))
    after = model.state_dict()  # buffers, batch counters restored; the mode too
    assert all(torch.equal(before[k], after[k]) for k in before) and not model.training
    assert bn.momentum == 0.1


def test_evaluate_adds_the_test_batch_row_and_statistics_files_keep_it(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 1, 6), 3, depth=2, width=8)
    x, y = torch.randn(60, 1, 1, 6), torch.randint(0, 3, (60,))
    layout = LayerLayout.of(model)
    statistics = EstimatorStatistics(["static-0.1"], torch.zeros(1, 16), torch.ones(1, 16), layout,
                                     {"test-batch": 20})
    statistics.save(tmp_path / "s.pt")
    loaded = EstimatorStatistics.load(tmp_path / "s.pt")
    assert loaded.prediction_batches == {"test-batch": 20}
    rows = evaluate_estimators(model, loaded, x, y, 3).set_index("estimator")
    twin = copy.deepcopy(model).train()  # torch's BN in train mode, batch by batch, as the reference
    with torch.no_grad():
        expected = torch.cat([twin(part).argmax(1) for part in x.split(20)])
    assert rows.index.tolist() == ["static-0.1", "test-batch"]
    assert rows.loc["test-batch", "accuracy"] == pytest.approx(float((expected == y).double().mean()))
    without = EstimatorStatistics(["static-0.1"], torch.zeros(1, 16), torch.ones(1, 16), layout)
    without.save(tmp_path / "plain.pt")
    assert "prediction_batches" not in torch.load(tmp_path / "plain.pt", weights_only=True)


# -- a run with every estimator --------------------------------------------------------------------

EVERY = TrainConfig(epochs=3, batch_size=40, precise_batches=3, seed=5, estimators=ESTIMATOR_KINDS,
                    betas=(0.01, 0.1, 0.5, 0.99, 1.0))


def test_a_run_with_every_estimator_logs_each_and_resumes_bitwise(data, tmp_path):
    write_run(train_run(small_mlp(), data, EVERY, tmp_path / "a.ckpt"), tmp_path / "straight")
    interrupted(data, tmp_path / "b.ckpt", EVERY, small_mlp(), epoch=2)
    write_run(train_run(small_mlp(seed=9), data, EVERY, tmp_path / "b.ckpt"), tmp_path / "resumed")
    for name in ("esm.csv", "betas.csv", "history.csv", "statistics.pt", "model.pt"):
        assert (tmp_path / "straight" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name
    esm = pd.read_csv(tmp_path / "straight/esm.csv")
    per_beta = {f"{kind}-{b}" for kind in ("static", "horizon", "moment", "static-biased")
                for b in ("0.01", "0.1", "0.5", "0.99", "1")}
    others = {"cma", "dmbn", "dmbn-causal", "dmbn-sigma", "dmbn-mu-sigma", "precise", "recalibrated",
              "precise-mean-unbiased", "precise-mean-biased"}
    assert set(esm.estimator) == per_beta | others  # test-batch has no ESM: no rows
    history = pd.read_csv(tmp_path / "straight/history.csv")
    assert "esm_accuracy_test-batch" not in history and "esm_accuracy_dmbn-causal" in history
    statistics = EstimatorStatistics.load(tmp_path / "straight/statistics.pt")
    assert statistics.prediction_batches == {"test-batch": 40}
    assert set(statistics.names) == per_beta | others
    # betas.csv: each choosing kind's β* is its criterion's argmin over the static rows of esm.csv
    betas = pd.read_csv(tmp_path / "straight/betas.csv")
    static = esm[esm.estimator.str.fullmatch(r"static-[0-9.]+")].assign(
        beta=lambda f: f.estimator.str.removeprefix("static-").astype(float), both=lambda f: f.esm_mu + f.esm_sigma)
    assert sorted(betas.estimator.unique()) == ["dmbn", "dmbn-mu-sigma", "dmbn-sigma"]
    for kind, criterion in (("dmbn", "esm_mu"), ("dmbn-sigma", "esm_sigma"), ("dmbn-mu-sigma", "both")):
        expected = static.loc[static.groupby(["epoch", "layer"])[criterion].idxmin()].set_index(["epoch", "layer"]).beta
        got = betas[betas.estimator == kind].set_index(["epoch", "layer"]).beta
        pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False, atol=1e-6, rtol=0)
    # static-1 and moment-1 are both the last batch's statistics, by two routes
    torch.testing.assert_close(statistics.of("moment-1"), statistics.of("static-1"), rtol=1e-4, atol=1e-5)


def test_a_checkpoint_from_before_beta_star_named_its_kind_resumes_as_dmbns(data, tmp_path):
    """Checkpoints written when β* rows had no ``estimator`` still resume: those rows are DMBN's."""
    config = TrainConfig(epochs=2, batch_size=40, precise_batches=3, seed=5)
    write_run(train_run(small_mlp(), data, config, tmp_path / "a.ckpt"), tmp_path / "straight")
    interrupted(data, tmp_path / "b.ckpt", config, small_mlp(), epoch=1)
    state = torch.load(tmp_path / "b.ckpt", weights_only=True)
    assert state["betas"] and all(row.pop("estimator") == "dmbn" for row in state["betas"])
    torch.save(state, tmp_path / "b.ckpt")
    write_run(train_run(small_mlp(), data, config, tmp_path / "b.ckpt"), tmp_path / "resumed")
    assert (tmp_path / "straight/betas.csv").read_bytes() == (tmp_path / "resumed/betas.csv").read_bytes()


# -- through the workflow --------------------------------------------------------------------------

@pytest.mark.slow  # a small study through every rule: a few minutes on 2 cores
def test_a_study_with_every_estimator_runs_through_the_workflow(tmp_path):
    from conftest import quickstart_config, snakemake, write_config

    config = quickstart_config(tmp_path, epochs=2)
    study = config["studies"]["quickstart"]
    study.update(seeds=[1], regimes=["mini", "full"])
    study["train"].update(estimators=list(ESTIMATOR_KINDS), betas=[0.01, 0.1, 1.0])
    snakemake(tmp_path, write_config(tmp_path, config), "--cores", "2", "quickstart")
    metrics = pd.read_csv(tmp_path / "results/quickstart/metrics.csv")
    bn = metrics[metrics.arch == "mlp"]
    per_beta = [f"{k}-{b}" for k in ("static", "horizon", "moment", "static-biased") for b in ("0.01", "0.1", "1")]
    others = ["cma", "dmbn", "dmbn-causal", "dmbn-sigma", "dmbn-mu-sigma", "precise", "precise-mean-unbiased",
              "precise-mean-biased", "recalibrated", "test-batch"]
    assert bn.groupby("regime").estimator.apply(set).to_dict() == {r: set(per_beta + others) for r in ("mini", "full")}
    table = pd.read_csv(tmp_path / "results/quickstart/tables/digits.csv")
    order = table[table.regime == "mini"].variant.tolist()  # the registry's ranks, β within a kind
    assert order == ["static-0.01", "static-0.1", "static-1", "horizon-0.01", "horizon-0.1", "horizon-1",
                     "moment-0.01", "moment-0.1", "moment-1", "static-biased-0.01", "static-biased-0.1",
                     "static-biased-1", "dmbn", "dmbn-causal", "dmbn-sigma", "dmbn-mu-sigma", "bn-bfn", "precise",
                     "precise-mean-unbiased", "precise-mean-biased", "cma", "recalibrated", "test-batch"]
    figures = tmp_path / "results/quickstart/figures/digits/mini"
    assert (figures / "accuracy_vs_beta.png").stat().st_size > 0 and (figures / "mlp/training.png").stat().st_size > 0
