"""The estimator registry (dmbn.names.ESTIMATORS) is where kinds, names and orders come from: the
schema, the tables and a new estimator all follow it; and the README's example of adding one runs."""

from __future__ import annotations

import re

import pytest
from torch import nn

from dmbn.config import ConfigError, check, validate
from dmbn.bank import EstimatorBank
from dmbn.names import ESTIMATORS, EstimatorKind, estimator_kind, static_name, unregister_estimator
from dmbn.tables import label, variant_order

from conftest import ROOT, base_config

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def test_row_names_are_readable_unique_and_path_safe():
    assert [static_name(b) for b in (0.1, 0.01, 0.99, 1.0, 0.00001)] == \
        ["static-0.1", "static-0.01", "static-0.99", "static-1", "static-0.00001"]
    assert static_name(0.25, "horizon") == "horizon-0.25"
    assert [estimator_kind(n) for n in ("static-1", "moment-0.5", "dmbn-sigma", "dmbn")] == \
        ["static", "moment", "dmbn-sigma", "dmbn"]


def test_betas_that_would_share_a_name_are_refused():
    config = base_config()
    config["studies"]["quickstart"]["train"]["betas"] = [0.1, 0.10000000001]
    with pytest.raises(ConfigError, match=r"^studies\.quickstart\.train\.betas: .* the same estimator name 'static-0\.1'"):
        check(config)


def test_schema_accepts_every_registered_kind_and_the_wider_beta_grid():
    config = base_config()
    config["train"]["estimators"] = list(ESTIMATORS)
    config["train"]["betas"] = [0.01, 0.1, 0.5, 0.99, 1.0]
    config["report"] = {"esm_estimator": "moment-0.99"}
    validate(config, SCHEMA)
    config["train"]["estimators"] = ["static", "median"]
    with pytest.raises(ConfigError) as error:
        validate(config, SCHEMA)
    assert str(error.value).startswith("train.estimators[1]: 'median' is not one of ['static', 'dmbn', 'cma'")


def test_a_kind_added_to_the_registry_is_accepted_by_the_schema_and_sorted_by_its_rank(monkeypatch):
    monkeypatch.setitem(ESTIMATORS, "median", EstimatorKind("Median", "Median", "epoch", False, 35))
    config = base_config()
    config["train"]["estimators"] = ["static", "median"]
    config["report"] = {"esm_estimator": "median"}
    validate(config, SCHEMA)  # the schema's enum and pattern come from the registry
    assert variant_order(["recalibrated", "median", "precise", "static-0.1"]) == \
        ["static-0.1", "bn-bfn", "precise", "median", "recalibrated"]
    assert label("median") == "Median"


def test_an_estimator_without_esm_cannot_be_the_plotted_one():
    config = base_config()
    config["report"] = {"esm_estimator": "test-batch"}
    with pytest.raises(ConfigError, match=r"^report\.esm_estimator: 'test-batch' does not match"):
        validate(config, SCHEMA)


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"<!-- estimator-example -->\n```python\n(.*?)```", text, re.S).group(1)


def test_the_readme_example_of_adding_an_estimator_works():
    namespace = {"__name__": "my_estimators"}  # the block is a user's module: it imports what it needs
    try:
        exec(compile(readme_example(), "README.md", "exec"), namespace)
        namespace["test_last_batch_is_batchnorm_at_momentum_one"]()
        bank = EstimatorBank(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)), estimators=("static", "last-batch"))
        assert bank.names[-1] == "last-batch" and "last-batch" in bank.stage_statistics("epoch")
        assert label("last-batch") == "Last batch"
    finally:
        unregister_estimator("last-batch")
    assert "last-batch" not in ESTIMATORS
