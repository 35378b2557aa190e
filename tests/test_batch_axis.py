"""The batch-size axis: regime names, a study's `batch_sizes`, its validation, the batch-size
column, the batch table and figures (plotted data read back from the artists, against pandas and
scipy here), and a tiny batch-axis study run through the real workflow."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import ROOT, base_config, planned_rules, snakemake, write_config
from dmbn import plots
from dmbn.config import (ConfigError, check, regime_batch_size, study_regimes, study_train, train_config,
                         validate)
from dmbn.names import REGIMES, REGIME_PATTERN, family_batch_size, is_regime, regime_label, regime_rank
from dmbn.report import BATCH_FIGURES
from dmbn.tables import batch_axis, batch_axis_latex, batch_axis_wide, label, with_batch_size

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "f1")


def config_with(**study) -> dict:
    """The shipped config with the quickstart study changed (a value None: the key removed)."""
    config = copy.deepcopy(base_config())
    spec = config["studies"]["quickstart"]
    spec.pop("regime_overrides")  # its `mini` is no regime of most studies here
    for key, value in study.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return config


def first_error_line(config: dict) -> str:
    with pytest.raises(ConfigError) as error:
        validate(config, SCHEMA)
        check(config)
    return str(error.value).splitlines()[0]


# -- the registry ------------------------------------------------------------------------------------

def test_regime_names_are_the_registry_and_the_mini_batch_family():
    for name in [*REGIMES, "mini-b2", "mini-b8", "mini-b1000"]:
        assert is_regime(name), name
    for name in ["mini-b", "mini-b0", "mini-b08", "mini-b-8", "mini-b8x", "half", "Mini-b8", "full-b8"]:
        assert not is_regime(name), name
    assert re.fullmatch(REGIME_PATTERN, "mini-b8") and re.compile(REGIME_PATTERN).groups == 0  # Snakemake adds its own
    assert [family_batch_size(r) for r in ("mini-b8", "mini-b1000", "mini", "full")] == [8, 1000, None, None]
    assert regime_label("mini-b16") == "Mini-batch, B = 16"
    assert regime_label("mini") == REGIMES["mini"][0]


def test_tables_order_named_regimes_first_then_the_axis_from_the_largest_batch():
    regimes = ["mini-b8", "mini", "mini-b1000", "full-heldout", "mini-b32", "full"]
    assert sorted(regimes, key=regime_rank) == ["full", "full-heldout", "mini", "mini-b1000", "mini-b32", "mini-b8"]


# -- a study's batch sizes ---------------------------------------------------------------------------

def test_batch_sizes_expand_into_regimes_and_set_each_runs_batch_size():
    config = config_with(regimes=None, batch_sizes=[8, 100, "full"])
    validate(config, SCHEMA)
    check(config)
    assert study_regimes(config, "quickstart") == ["mini-b8", "mini-b100", "full-heldout"]
    trains = {r: train_config(study_train(config, "quickstart", r), r, seed=1, device="cpu").batch_size
              for r in study_regimes(config, "quickstart")}
    assert trains == {"mini-b8": 8, "mini-b100": 100, "full-heldout": None}  # None: full batch
    # the study's other settings reach every point; the named regimes keep train.batch_size
    assert study_train(config, "quickstart", "mini-b8")["epochs"] == config["studies"]["quickstart"]["train"]["epochs"]
    assert study_train(config, "quickstart", "mini")["batch_size"] == config["train"]["batch_size"]


def test_regimes_and_batch_sizes_given_together_must_agree():
    agree = config_with(regimes=["full-heldout", "mini-b16"], batch_sizes=[16, "full"])
    validate(agree, SCHEMA)
    check(agree)
    assert study_regimes(agree, "quickstart") == ["mini-b16", "full-heldout"]
    line = first_error_line(config_with(regimes=["mini", "full"], batch_sizes=[16, "full"]))
    assert line.startswith("studies.quickstart.regimes: ['mini', 'full'] does not match "
                           "studies.quickstart.batch_sizes: [16, 'full']")


@pytest.mark.parametrize("study, first_line", [
    (dict(regimes=None, batch_sizes=[1, "full"]), "studies.quickstart.batch_sizes[0]: 1 is less than the minimum of 2"),
    (dict(regimes=None, batch_sizes=[8, "fill"]), "studies.quickstart.batch_sizes[1]: 'fill' does not match"),
    (dict(regimes=None, batch_sizes=[8.0]), "studies.quickstart.batch_sizes[0]: 8.0 is not of type"),
    (dict(regimes=None, batch_sizes=[8, 8]), "studies.quickstart.batch_sizes: [8, 8] has non-unique elements"),
    (dict(regimes=None, batch_sizes=[]), "studies.quickstart.batch_sizes: [] should be non-empty"),
    (dict(regimes=None, batch_sizes=[2000]),
     "studies.quickstart.batch_sizes: 2000 is larger than the 1005 training samples of 'digits'"),
    (dict(regimes=["mini-b2000"]),
     "studies.quickstart.regimes: 2000 is larger than the 1005 training samples of 'digits'"),
    (dict(regimes=None), "studies.quickstart: no `regimes` and no `batch_sizes`"),
    (dict(regimes=["mini-b0"]), "studies.quickstart.regimes[0]: 'mini-b0' does not match"),
    (dict(regimes=None, batch_sizes=[8], regime_overrides={"mini-b9": {"seeds": [1]}}),
     "studies.quickstart.regime_overrides.mini-b9: the study has no regime 'mini-b9'"),
    (dict(regimes=None, batch_sizes=[8], regime_overrides={"mini-b8": {"train": {"batch_size": 4}}}),
     "studies.quickstart.regime_overrides.mini-b8.train.batch_size: 4, but the regime's name sets it (8)"),
])
def test_a_bad_batch_axis_is_rejected_naming_key_and_value(study, first_line):
    assert first_error_line(config_with(**study)).startswith(first_line)


def test_a_regime_override_reaches_one_point_of_the_axis():
    config = config_with(regimes=None, batch_sizes=[8, 16], regime_overrides={"mini-b8": {"train": {"lr": 0.004}}})
    validate(config, SCHEMA)
    check(config)
    assert study_train(config, "quickstart", "mini-b8")["lr"] == 0.004
    assert study_train(config, "quickstart", "mini-b16")["lr"] == config["studies"]["quickstart"]["train"]["lr"]


def test_batch_size_column_full_batch_is_the_number_of_training_samples():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    config = config_with(regimes=None, batch_sizes=[8, "full"])
    config["studies"]["quickstart"]["datasets"] = ["digits", "fashion-mnist"]
    # digits: the data set's own 30 % test part, then the 80/20 split, as dmbn.data makes them
    labels = load_digits().target
    train, test = train_test_split(np.arange(len(labels)), test_size=0.3, stratify=labels, random_state=0)
    fit, _ = train_test_split(train, test_size=config["split"]["validation_fraction"], stratify=labels[train],
                              random_state=0)
    assert regime_batch_size(config, "quickstart", "digits", "full-heldout") == len(fit) == 1005
    assert regime_batch_size(config, "quickstart", "digits", "full") == len(test)  # the thesis's: the test set
    assert regime_batch_size(config, "quickstart", "fashion-mnist", "full-heldout") == 48000  # 60000 - 12000
    assert regime_batch_size(config, "quickstart", "digits", "mini-b8") == 8
    assert regime_batch_size(config, "quickstart", "digits", "mini") == config["train"]["batch_size"]
    config["datasets"]["own"] = {"mirrors": ["http://127.0.0.1:9/"], "md5": {}}
    assert regime_batch_size(config, "quickstart", "own", "full-heldout") is None  # its size is not configured
    frame = pd.DataFrame({"regime": ["mini-b8", "full-heldout", "mini-b8"]})
    assert with_batch_size(frame, {"mini-b8": 8, "full-heldout": 1005}).batch_size.tolist() == [8, 1005, 8]
    with pytest.raises(ValueError, match=r"no batch size for the regimes \['full-heldout'\]"):
        with_batch_size(frame, {"mini-b8": 8})


def test_the_shipped_batch_sweep_plans_one_run_per_batch_size_and_seed():
    config = base_config()
    validate(config, SCHEMA)
    check(config)
    spec = config["studies"]["batch_sweep"]
    assert spec["datasets"] == ["fashion-mnist"] and len(spec["seeds"]) >= 3 and "full" in spec["batch_sizes"]
    assert 100 in spec["batch_sizes"]  # the thesis's mini-batch regime is a point of the axis
    assert set(study_regimes(config, "batch_sweep")) == {"full-heldout"} | {
        f"mini-b{b}" for b in spec["batch_sizes"] if b != "full"}


# -- the batch table ------------------------------------------------------------------------------

SIZES = {"mini-b8": 8, "mini-b100": 100, "full-heldout": 1005}


def axis_metrics(seeds=(1, 2, 3), seed: int = 0) -> pd.DataFrame:
    """Hand-made long metrics of three batch sizes: BN MLP with three estimators, its BN-BFN twin."""
    rng = np.random.default_rng(seed)
    rows = []
    for regime in SIZES:
        for arch, estimators in (("mlp", ("static-0.1", "static-0.5", "dmbn")), ("mlp-bnbfn", ("static-0.1", "dmbn"))):
            for s in seeds:
                for estimator in estimators:
                    rows.append(dict(dataset="d", regime=regime, arch=arch, seed=s, estimator=estimator,
                                     **{m: rng.uniform(0.3, 0.9) for m in METRIC_NAMES}))
    return with_batch_size(pd.DataFrame(rows).sample(frac=1, random_state=seed), SIZES)


def expected_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """scipy's Student-t interval of the mean; the mean itself where the values are all equal."""
    if np.ptp(values) == 0:
        return values.mean(), values.mean()
    return stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=stats.sem(values))


def test_batch_table_is_the_seed_mean_and_students_t_interval_per_variant_and_batch_size():
    metrics = axis_metrics()
    axis = batch_axis(metrics, 0.9)
    # BN-BFN is the twin with β = 0.1; the twin's DMBN is no row
    assert axis.variant.unique().tolist() == ["static-0.1", "static-0.5", "dmbn", "bn-bfn"]
    assert axis[axis.variant == "dmbn"].regime.tolist() == ["mini-b8", "mini-b100", "full-heldout"]
    for row in axis.itertuples():
        arch, estimator = ("mlp-bnbfn", "static-0.1") if row.variant == "bn-bfn" else ("mlp", row.variant)
        runs = metrics[(metrics.arch == arch) & (metrics.estimator == estimator) & (metrics.regime == row.regime)]
        for metric in METRIC_NAMES:
            low, high = expected_interval(runs[metric].to_numpy(), 0.9)
            assert getattr(row, f"{metric}_mean") == pytest.approx(runs[metric].mean())
            assert (getattr(row, f"{metric}_ci_low"), getattr(row, f"{metric}_ci_high")) == pytest.approx((low, high))
        assert row.batch_size == SIZES[row.regime] and row.seeds == 3 and row.confidence == 0.9
    wide = batch_axis_wide(axis)
    assert list(wide.columns) == ["8", "100", "full (1005)"]
    assert list(wide.index) == [label(v) for v in ("static-0.1", "static-0.5", "dmbn", "bn-bfn")]
    dmbn = metrics[(metrics.arch == "mlp") & (metrics.estimator == "dmbn") & (metrics.regime == "mini-b8")].accuracy
    mean, half = wide.loc["DMBN", "8"]
    low, high = expected_interval(dmbn.to_numpy(), 0.9)
    assert (mean, half) == pytest.approx((dmbn.mean(), (high - low) / 2))
    tex = batch_axis_latex(wide, 3)
    assert "\\toprule" in tex and f"{dmbn.mean():.3f} $\\pm$ {(high - low) / 2:.3f}" in tex
    assert "Static BN ($\\beta = 0.5$)" in tex  # labels as LaTeX, not escaped


def test_an_estimator_the_order_does_not_name_is_kept_last():
    metrics = axis_metrics()
    extra = metrics[metrics.estimator == "dmbn"].assign(estimator="new-rule", accuracy=0.5)
    axis = batch_axis(pd.concat([extra, metrics]), 0.95)
    assert axis.variant.unique().tolist() == ["static-0.1", "static-0.5", "dmbn", "bn-bfn", "new-rule"]
    assert batch_axis_wide(axis).index[-1] == "new-rule"
    fig = plots.accuracy_vs_batch_size(pd.concat([extra, metrics]), "mlp", 0.95)
    other = panel_with(fig, "new-rule")
    assert other is fig.axes[-1] and other.get_title() == "other estimators"  # the last panel
    np.testing.assert_allclose(lines_by_label(other)["new-rule"][1], [0.5, 0.5, 0.5])


# -- the batch figures: their plotted data ------------------------------------------------------------

def lines_by_label(ax) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(x, y) of every labelled line and errorbar (whose label sits on its container)."""
    lines = [(line.get_label(), line) for line in ax.get_lines()]
    lines += [(c.get_label(), c.lines[0]) for c in ax.containers if hasattr(c, "has_yerr")]
    return {text: (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
            for text, line in lines if not text.startswith("_")}


def panel_with(fig, text: str):
    """The one axes of ``fig`` that draws a line or errorbar labelled ``text``."""
    (ax,) = [ax for ax in fig.axes if text in lines_by_label(ax)]
    return ax


def error_bars(ax, text: str) -> np.ndarray:
    """(low, high) per point of the errorbar container labelled ``text``, from its bar segments."""
    container = next(c for c in ax.containers if c.get_label() == text)
    segments = container.lines[2][0].get_segments()
    return np.array([[segment[:, 1].min(), segment[:, 1].max()] for segment in segments])


def test_accuracy_against_batch_size_plots_seed_means_and_t_intervals_on_a_log_axis():
    metrics = axis_metrics()
    fig = plots.accuracy_vs_batch_size(metrics, "mlp", 0.95, "d · mlp")
    static, other = fig.axes[:2]  # small multiples: Static BN's βs, then every other row
    assert set(lines_by_label(static)) == {label(v) for v in ("static-0.1", "static-0.5")}
    reference = f"{label('static-0.1')}, for reference"  # the default, grey, in the other panel
    assert set(lines_by_label(other)) == {label("dmbn"), label("bn-bfn"), reference}
    for variant, arch, estimator in (("dmbn", "mlp", "dmbn"), ("bn-bfn", "mlp-bnbfn", "static-0.1")):
        own = metrics[(metrics.arch == arch) & (metrics.estimator == estimator)]
        by_size = own.groupby("batch_size").accuracy
        x, y = lines_by_label(other)[label(variant)]
        np.testing.assert_array_equal(x, [8, 100, 1005])
        np.testing.assert_allclose(y, by_size.mean().to_numpy())
        expected = np.clip([expected_interval(v.to_numpy(), 0.95) for _, v in by_size], 0, 1)
        np.testing.assert_allclose(error_bars(other, label(variant)), expected)
    np.testing.assert_allclose(lines_by_label(other)[reference][1], lines_by_label(static)[label("static-0.1")][1])
    ax = other
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "100", "full (1005)"]
    np.testing.assert_array_equal(ax.get_xticks(), [8, 100, 1005])


def test_a_full_batch_of_unknown_size_sits_a_decade_beyond_the_largest_batch():
    metrics = axis_metrics().assign(batch_size=lambda f: f.batch_size.where(f.regime != "full-heldout"))
    ax = plots.accuracy_vs_batch_size(metrics, "mlp", 0.95).axes[0]
    np.testing.assert_array_equal(ax.get_xticks(), [8, 100, 1000])  # every panel has the same axis
    assert ax.get_xticklabels()[-1].get_text() == "full"


def summaries(seed: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hand-made ``esm_last_epoch`` and ``beta_star`` summaries (as `summarise` writes them) of
    the three batch sizes, three seeds, three BN layers; recalibrated's ESM is 0; β* of DMBN and
    of its ESM_σ variant."""
    rng = np.random.default_rng(seed)
    esm, betas = [], []
    for regime in SIZES:
        for s in (1, 2, 3):
            key = dict(dataset="d", regime=regime, arch="mlp", seed=s, member="bank")
            for estimator in ("static-0.1", "dmbn", "recalibrated"):
                values = np.zeros(3) if estimator == "recalibrated" else rng.uniform(1e-3, 1, 3)
                esm.append({**key, "epoch": 4, "estimator": estimator, **{f"l{k + 1}": values[k] for k in range(3)}})
            for kind in ("dmbn", "dmbn-sigma"):
                for layer in (1, 2, 3):
                    betas.append({**key, "estimator": kind, "layer": layer,
                                  **{f"e{e}": rng.choice([0.1, 0.3, 0.9]) for e in (1, 2, 3, 4)}})
    return pd.DataFrame(esm), pd.DataFrame(betas)


def test_esm_against_batch_size_plots_the_last_epochs_seed_means_per_layer():
    esm, _ = summaries()
    sizes = pd.DataFrame({"regime": list(SIZES), "batch_size": list(SIZES.values())})
    fig = plots.esm_vs_batch_size(esm, sizes, "mlp", [1, 3], "d · mlp")
    # small multiples: a row per kind (Static BN's βs; every other estimator), a column per layer
    (static_1, static_3), (other_1, other_3) = np.reshape(fig.axes, (2, 2))
    for (static, other), layer in zip(((static_1, other_1), (static_3, other_3)), (1, 3)):
        for ax, estimator in ((static, "static-0.1"), (other, "dmbn"), (other, "static-0.1")):
            text = label(estimator) + (", for reference" if ax is other and estimator == "static-0.1" else "")
            x, y = lines_by_label(ax)[text]
            expected = esm[esm.estimator == estimator].groupby("regime")[f"l{layer}"].mean()
            np.testing.assert_array_equal(x, [8, 100, 1005])
            np.testing.assert_allclose(y, expected[list(SIZES)].to_numpy())
        assert any("axis floor" in text for text in lines_by_label(other))  # recalibrated: zeros, off the log axis
        assert static.get_title() == f"Static BN, every β · BN layer {layer}"
        assert other.get_title() == f"other estimators · BN layer {layer}"
        assert static.get_xscale() == static.get_yscale() == other.get_yscale() == "log"


@pytest.mark.parametrize("kinds", [("dmbn", "dmbn-sigma"), ("dmbn",)])
def test_beta_star_against_batch_size_plots_the_last_epoch_and_the_epoch_mean(kinds):
    _, betas = summaries()
    if kinds == ("dmbn",):  # summaries written before β* had an estimator column: DMBN's alone
        betas = betas[betas.estimator == "dmbn"].drop(columns="estimator")
    sizes = pd.DataFrame({"regime": list(SIZES), "batch_size": list(SIZES.values())})
    ax = plots.beta_star_vs_batch_size(betas, sizes, "mlp", 2, 0.95, "d · mlp").axes[0]
    lines = lines_by_label(ax)
    expected_lines = []
    for kind in kinds:
        layer = betas[(betas.layer == 2) & (betas.get("estimator", "dmbn") == kind)]
        last = layer.groupby("regime").e4
        mean = layer.assign(mean=layer[["e1", "e2", "e3", "e4"]].mean(axis=1)).groupby("regime")["mean"]
        prefix = "" if kind == "dmbn" else f"{label(kind)}: "
        expected_lines += [(prefix + "β* at the last epoch", last), (prefix + "β*, mean over epochs", mean)]
    assert sorted(lines) == sorted(text for text, _ in expected_lines)
    for text, values in expected_lines:
        x, y = lines[text]
        np.testing.assert_array_equal(x, [8, 100, 1005])
        np.testing.assert_allclose(y, values.mean()[list(SIZES)].to_numpy())
        expected = np.array([expected_interval(values.get_group(r).to_numpy(), 0.95) for r in SIZES])
        np.testing.assert_allclose(error_bars(ax, text), expected)


def test_batch_figures_are_registered_with_captions():
    for name in BATCH_FIGURES:
        assert (ROOT / f"workflow/report/{name}.rst").read_text().strip(), name
    assert (ROOT / "workflow/report/batch_table.rst").read_text().strip()


# -- the real workflow: a tiny batch-axis study --------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """digits at batch sizes 32, 128 and full: 2 seeds, 2 epochs, a 3-layer MLP, through Snakemake."""
    workdir = tmp_path_factory.mktemp("sweep")
    config = copy.deepcopy(base_config())
    config["data_root"] = str(workdir / "resources" / "data")
    config["studies"] = {"sweep": {
        "datasets": ["digits"], "batch_sizes": [32, 128, "full"], "archs": ["mlp"], "seeds": [1, 2],
        "train": {"depth": 3, "width": 32, "epochs": 2, "lr": 0.01, "precise_batches": 3},
        "report": {"beta_layer": 2, "esm_layers": [1, 3]}}}
    config["default_study"] = "sweep"
    path = write_config(workdir, config)
    plan = planned_rules(snakemake(workdir, path, "-n", "sweep"))
    snakemake(workdir, path, "--cores", "2", "sweep")
    return workdir, config, plan


@pytest.mark.slow
def test_a_batch_axis_study_trains_each_batch_size_and_writes_its_table_and_figures(tiny_sweep):
    workdir, config, plan = tiny_sweep
    assert plan["train"] == 3 * 2 and plan["batch_figures"] == plan["batch_table"] == 1
    study = workdir / "results/sweep"
    metrics = pd.read_csv(study / "metrics.csv")
    assert sorted(metrics.regime.unique()) == ["full-heldout", "mini-b128", "mini-b32"]
    for regime, steps in (("mini-b32", 32), ("mini-b128", 128)):  # each run trained at its own batch size
        log = (workdir / f"results/logs/sweep/digits_{regime}_mlp_seed1_bank_train.log").read_text()
        assert f"batch_size={steps}," in log
    assert "batch_size=None," in (workdir / "results/logs/sweep/digits_full-heldout_mlp_seed1_bank_train.log").read_text()
    table = pd.read_csv(study / "tables/digits_batch_sizes.csv")
    sizes = {"mini-b32": 32, "mini-b128": 128, "full-heldout": 1005}
    assert dict(zip(table.regime, table.batch_size)) == sizes
    dmbn = metrics[metrics.estimator == "dmbn"].groupby("regime").accuracy.mean()
    shown = table[table.variant == "dmbn"].set_index("regime").accuracy_mean
    np.testing.assert_allclose(shown[list(sizes)], dmbn[list(sizes)], atol=1e-6)  # CSV rounded to decimals + 3
    for name in BATCH_FIGURES:
        assert (study / f"figures/digits/batch_sizes/{name}.png").read_bytes().startswith(b"\x89PNG"), name
        assert '<figure><img src="data:image/png;base64,' in (study / f"figures/digits/batch_sizes/{name}.html").read_text()
    html = (study / "tables/digits_batch_sizes.html").read_text()
    assert "full (1005)" in html and "DMBN" in html


@pytest.mark.slow
def test_publish_copies_the_batch_table_and_figures(tiny_sweep):
    import subprocess

    workdir, _, _ = tiny_sweep
    subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "-C", str(workdir), "publish", "STUDY=sweep"],
                   check=True, capture_output=True)
    published = workdir / "docs/results/sweep"
    for ext in ("csv", "tex", "html"):
        assert (published / f"tables/digits_batch_sizes.{ext}").read_bytes() == \
            (workdir / f"results/sweep/tables/digits_batch_sizes.{ext}").read_bytes()
    assert sorted(p.name for p in (published / "figures/digits/batch_sizes").iterdir()) == \
        sorted(f"{name}.png" for name in BATCH_FIGURES)
    assert (published / "summaries/esm_last_epoch.csv").is_file() and (published / "metrics.csv").is_file()
    # the training curves: each run's history.csv, every epoch, with the run's labels
    curves = pd.read_csv(published / "summaries/training_curves.csv")
    one = curves[(curves.regime == curves.regime.iloc[0]) & (curves.seed == curves.seed.iloc[0])]
    run = one.iloc[0]
    history = pd.read_csv(workdir / f"results/sweep/runs/{run.dataset}/{run.regime}/{run.arch}/seed{run.seed}/bank/history.csv")
    assert one.epoch.tolist() == history.epoch.tolist()
    assert one.train_loss.tolist() == pytest.approx(history.train_loss.tolist(), abs=5e-5)
    assert one["esm_accuracy_static-0.1"].tolist() == pytest.approx(history["esm_accuracy_static-0.1"].tolist(), abs=5e-5)
    # each run's last training epoch, as its own history.csv ends
    training = pd.read_csv(published / "summaries/training_last_epoch.csv")
    histories = sorted((workdir / "results/sweep/runs").glob("**/history.csv"))
    assert len(training) == len(histories) > 0
    finals = sorted(pd.read_csv(path).iloc[-1].train_accuracy for path in histories)
    assert sorted(training.train_accuracy) == pytest.approx(finals, abs=5.1e-5)  # written to 4 decimals
    # PreciseBN's batch-mean spread: every layer row of every run that wrote one, with its labels
    spread = pd.read_csv(published / "summaries/precise_spread.csv")
    files = sorted((workdir / "results/sweep/runs").glob("**/precise_spread.csv"))
    assert len(spread) == sum(len(pd.read_csv(path)) for path in files) > 0
    first = files[0].relative_to(workdir / "results/sweep/runs").parts  # dataset, regime, arch, seed…, member
    mine = spread[(spread.regime == first[1]) & (spread.seed == int(first[3][4:]))].sort_values("layer")
    own = pd.read_csv(files[0]).sort_values("layer")
    assert mine.pooled_var.tolist() == pytest.approx(own.pooled_var.tolist(), rel=1e-4)
    assert mine.ratio.tolist() == pytest.approx(own.ratio.tolist(), rel=1e-4, nan_ok=True)  # one batch: none
    assert spread[spread.batches > 1].ratio.notna().all()


@pytest.mark.slow
def test_the_report_holds_the_batch_table_and_figures_with_their_captions(tiny_sweep):
    workdir, config, _ = tiny_sweep
    path = write_config(workdir, config)
    snakemake(workdir, path, "--report", str(workdir / "report.html"), "sweep")
    report = (workdir / "report.html").read_text(errors="replace")
    for name in [*BATCH_FIGURES, "digits_batch_sizes"]:
        assert f"{name}.html" in report, name


@pytest.mark.slow
@pytest.mark.browser
def test_the_batch_items_read_in_a_browser_row_by_row_with_their_captions(tiny_sweep, browser):
    """The batch-size table and figures of `snakemake --report` in Chromium, as test_report_browser
    reads the others: a row per variant in the CSV's order, the first cell of each as the CSV's
    mean ± half-width, captions, images. DMBN_BATCH_REPORT=<workdir>:<study>:<dataset> reads a
    finished real study instead (its config.yaml in the workdir), e.g. /work/study-cnn:cnn:fashion-mnist."""
    import os
    from pathlib import Path

    from dmbn.config import report_settings
    from dmbn.report import item_label
    from dmbn.tables import present_order
    from test_report_browser import Reader, first_words, html_rows, shown_figure

    workdir, config, _ = tiny_sweep
    study, dataset, path = "sweep", "digits", write_config(workdir, config)
    if os.environ.get("DMBN_BATCH_REPORT"):
        folder, study, dataset = os.environ["DMBN_BATCH_REPORT"].split(":")
        workdir, path = Path(folder), Path(folder) / "config.yaml"
        import yaml

        config = yaml.safe_load(path.read_text())
    report = workdir / f"results/{study}/report.html"
    snakemake(workdir, path, "--report", str(report), study)
    decimals = report_settings(config, study)["decimals"]
    axis = pd.read_csv(workdir / f"results/{study}/tables/{dataset}_batch_sizes.csv")
    reader = Reader(browser, report, None)
    reader.open_category(dataset)
    reader.view(item_label("batch_table"))
    rows, caption, _ = html_rows(reader)
    variants = present_order(axis.variant.unique())
    assert [r[0] for r in rows] == [label(v, latex=False) for v in variants]
    for row, variant in zip(rows, variants):  # the smallest batch size's cell, from the CSV
        first = axis[axis.variant == variant].iloc[0]
        half = (first.accuracy_ci_high - first.accuracy_ci_low) / 2
        assert row[1] == f"{first.accuracy_mean:.{decimals}f} ± {half:.{decimals}f}", (variant, row)
    assert caption.startswith(first_words("batch_table.rst")), caption
    for name in BATCH_FIGURES:
        shown_figure(reader, dataset, name)
    assert reader.errors == []
    reader.page.close()
