"""A user's own estimator, defined outside dmbn and registered in one call (issue #26, item 6):
the bank carries it, the config schema takes its kind, tables and figures order, label and style
it; clashes and bad stages are refused naming the kind; a workflow run imports the user's module."""

from __future__ import annotations

import copy
import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch import nn

import dmbn
from dmbn.bank import EstimatorBank
from dmbn.config import ConfigError, validate
from dmbn.estimators import Batch, Estimator, Setup, Statistics
from dmbn.names import ESTIMATORS
from dmbn.plots import style
from dmbn.tables import label, variant_order

from conftest import ROOT, base_config, planned_rules, quickstart_config, snakemake, write_config

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


class MeanOfBatches(Estimator):
    """The plain average of every batch's mean and unbiased variance since training began."""

    kind = "mine"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.mean, self.var = self._zeros_ones()
        self.batches = 0

    def observe(self, batch: Batch) -> None:
        self.batches += 1
        self.mean += (batch.mean - self.mean) / self.batches
        self.var += (batch.var - self.var) / self.batches

    def statistics(self) -> dict[str, Statistics]:
        return {self.kind: (self.mean, self.var)}


@pytest.fixture
def mine():
    """``MeanOfBatches`` registered as ``mine`` for one test, in one call."""
    with dmbn.registered_estimator(MeanOfBatches, label="Mean of batches", stage="epoch", rank=35) as cls:
        yield cls
    assert "mine" not in ESTIMATORS


def batch_statistics_by_hand(model: nn.Module, batches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each BN layer's input recorded by a hook; the mean over batches of its per-channel batch
    mean and unbiased batch variance, flat over the layers in model order."""
    inputs: dict[int, list[torch.Tensor]] = {}
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    for i, bn in enumerate(layers):
        bn.register_forward_hook(lambda _m, args, _out, i=i: inputs.setdefault(i, []).append(args[0].detach()))
    with torch.no_grad():
        for x in batches:
            model.train()(x)
    means = [torch.stack([h.mean(0) for h in inputs[i]]).mean(0) for i in range(len(layers))]
    variances = [torch.stack([h.var(0, unbiased=True) for h in inputs[i]]).mean(0) for i in range(len(layers))]
    return torch.cat(means), torch.cat(variances)


def test_a_class_registered_in_one_call_rides_in_the_bank_with_statistics_by_hand(mine):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    reference = copy.deepcopy(model)
    batches = torch.randn(4, 16, 5) * 3 + 1
    bank = EstimatorBank(model, estimators=["static", "mine"])
    with torch.no_grad():
        for x in batches:
            model.train()(x)
            bank.observe()
    assert "mine" in bank.names and "mine" in bank.stage_statistics("epoch")
    torch.testing.assert_close(bank.statistics("mine"), batch_statistics_by_hand(reference, batches))


def test_the_schema_takes_a_registered_kind_and_still_refuses_an_unknown_one(mine):
    config = base_config()
    config["train"]["estimators"] = ["static", "mine"]
    config["report"] = {"esm_estimator": "mine"}
    validate(config, SCHEMA)
    config["train"]["estimators"] = ["static", "mine", "median"]
    with pytest.raises(ConfigError, match=r"^train\.estimators\[2\]: 'median' is not one of \[.*'mine'\]"):
        validate(config, SCHEMA)


def test_tables_and_figures_order_label_and_style_a_registered_kind(mine):
    assert variant_order(["recalibrated", "mine", "cma", "precise", "static-0.1"]) == \
        ["static-0.1", "bn-bfn", "precise", "mine", "cma", "recalibrated"]  # rank 35: between 30 and 40
    assert label("mine") == "Mean of batches" and label("mine", latex=False) == "Mean of batches"
    taken = {(v.look.get("color"), v.look.get("marker")) for k, v in ESTIMATORS.items() if k != "mine"}
    look = style("mine")
    assert look["color"].startswith("#") and (look["color"], look["marker"]) not in taken


def test_defaults_name_rank_and_look_of_a_plain_registration():
    class Plain(MeanOfBatches):
        kind = "plain-mean"

    highest = max(v.rank for v in ESTIMATORS.values())
    with dmbn.registered_estimator(Plain):
        entry = ESTIMATORS["plain-mean"]
        assert (entry.label, entry.stage, entry.rank, entry.per_beta, entry.default) == \
            ("Plain mean", "epoch", highest + 10, False, False)
        assert variant_order(["plain-mean", "test-batch", "static-0.1"])[-1] == "plain-mean"  # after the built-ins
    assert "plain-mean" not in ESTIMATORS


def test_a_decorator_registers_a_class_under_the_kind_it_gives():
    try:
        @dmbn.register_estimator(kind="decorated", label="Decorated")
        class Decorated(MeanOfBatches):
            kind = ""

        assert Decorated.kind == "decorated" and ESTIMATORS["decorated"].cls is Decorated
        bank = EstimatorBank(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), estimators=["static", "decorated"])
        assert "decorated" in bank.names
    finally:
        dmbn.unregister_estimator("decorated")


@pytest.mark.parametrize("kind, spec, message", [
    ("mine", {}, r"^estimator 'mine' is already registered \(Mean of batches"),
    ("static", {}, r"^estimator 'static' is already registered \(Static BN, class dmbn\.estimators:StaticEMA\)"),
    ("static-1", {}, r"^estimator 'static-1' is already a row name \(Static BN \(β = 1\)\)"),
    ("bn-bfn", {}, r"^estimator 'bn-bfn' is already a row name \(BN-BFN\)"),
    ("other", {"stage": "epcoh"}, r"^estimator 'other': stage 'epcoh' is not one of epoch, chosen, final, none"),
    ("Other_One", {}, r"^estimator kind 'Other_One' of .*: a kind is lower-case"),
    ("other", {"default": True}, r"^estimator 'other': default=True is for the built-ins"),
])
def test_a_clash_or_a_bad_stage_is_refused_naming_the_kind(mine, kind, spec, message):
    before = dict(ESTIMATORS)

    class Other(MeanOfBatches):
        pass

    Other.kind = kind
    with pytest.raises(ValueError, match=message):
        dmbn.register_estimator(Other, **spec)
    assert ESTIMATORS == before


def test_built_ins_are_registered_by_reference_and_the_config_check_needs_no_torch():
    assert ESTIMATORS["static"].cls == "dmbn.estimators:StaticEMA"
    assert ESTIMATORS["static"].estimator_class() is dmbn.estimators.StaticEMA
    code = ("import sys, dmbn.config, dmbn.names; "
            "dmbn.names.register_estimator('my.module:Mine', kind='mine-lazy', stage='final'); "
            "assert dmbn.names.ESTIMATORS['mine-lazy'].rank == 70; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_built_in_cannot_be_unregistered():
    with pytest.raises(ValueError, match="^estimator 'dmbn' is a built-in"):
        dmbn.unregister_estimator("dmbn")


# -- the workflow: a user's module listed under estimator_modules -----------------------------------

USER_MODULE = '''
import dmbn
from dmbn.estimators import Estimator


@dmbn.register_estimator(label="Mean of batches", stage="epoch", rank=35)
class MeanOfBatches(Estimator):
    kind = "mine"

    def __init__(self, setup):
        super().__init__(setup)
        self.mean, self.var = self._zeros_ones()
        self.batches = 0

    def observe(self, batch):
        self.batches += 1
        self.mean += (batch.mean - self.mean) / self.batches
        self.var += (batch.var - self.var) / self.batches

    def statistics(self):
        return {self.kind: (self.mean, self.var)}

    def state_dict(self):
        return {"mean": self.mean, "var": self.var, "batches": self.batches}

    def load_state_dict(self, state):
        self.mean.copy_(state["mean"]); self.var.copy_(state["var"]); self.batches = state["batches"]
'''


def user_study(tmp_path, modules: list[str]) -> dict:
    config = quickstart_config(tmp_path, epochs=2)
    config["estimator_modules"] = modules
    study = config["studies"]["quickstart"]
    study.update(seeds=[1], regimes=["mini"])
    study["train"].update(estimators=["static", "dmbn", "mine"], betas=[0.1, 0.9])
    return config


def test_a_workflow_plans_a_user_estimator_and_names_a_module_it_cannot_import(tmp_path):
    (tmp_path / "my_estimators.py").write_text(USER_MODULE)
    config = write_config(tmp_path, user_study(tmp_path, ["my_estimators.py"]))
    plan = snakemake(tmp_path, config, "-n", "quickstart")
    assert planned_rules(plan)["train"] == 2  # BN and BN-BFN, one seed, one regime
    refused = snakemake(tmp_path, write_config(tmp_path, user_study(tmp_path, ["missing_estimators.py"])),
                        "-n", "quickstart", check=False)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "estimator_modules[0]: " in output and "missing_estimators.py" in output, output
    without = user_study(tmp_path, [])
    refused = snakemake(tmp_path, write_config(tmp_path, without), "-n", "quickstart", check=False)
    assert refused.returncode != 0 and "'mine' is not one of" in refused.stdout + refused.stderr


@pytest.mark.slow  # one small study through every rule: a few minutes on 2 cores
def test_a_user_estimator_runs_through_the_workflow_into_metrics_and_tables(tmp_path):
    (tmp_path / "my_estimators.py").write_text(USER_MODULE)
    config = write_config(tmp_path, user_study(tmp_path, ["my_estimators.py"]))
    snakemake(tmp_path, config, "--cores", "2", "quickstart")
    metrics = pd.read_csv(tmp_path / "results/quickstart/metrics.csv")
    assert set(metrics[metrics.arch == "mlp"].estimator) == {"static-0.1", "static-0.9", "dmbn", "mine"}
    run = tmp_path / "results/quickstart/runs/digits/mini/mlp/seed1/bank"
    assert "mine" in set(pd.read_csv(run / "esm.csv").estimator)
    table = pd.read_csv(tmp_path / "results/quickstart/tables/digits.csv")
    assert table.variant.tolist() == ["static-0.1", "static-0.9", "dmbn", "bn-bfn", "mine"]
    assert "Mean of batches" in (tmp_path / "results/quickstart/tables/digits.html").read_text()
