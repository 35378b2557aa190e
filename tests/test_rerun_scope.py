"""Settings that change no result re-run nothing (issue #24, problem 5).

Snakemake re-runs a job whose params changed (its default rerun triggers). Where data come from
(`download`, `local_sources`) and what the thesis calls a data set (`paper_name`) change no
downloaded, decoded or trained file, so a finished study must stay finished when they change; a
new `paper_name` re-runs only the comparison with the thesis, the one output that shows it.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest

from conftest import (base_config, planned_rules, quickstart_config, snakemake, write_config,
                      write_mnist_like)

# the jobs that only gather and show finished runs' results, and the default target
REPORTING = {"aggregate", "table", "thesis_comparison", "paired", "run_cards", "summarise", "figures",
             "run_figures", "study_page", "all"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict, Path]:
    """The quickstart cut to one run (digits, mini-batch, BN MLP, seed 1, one epoch), run to the
    end: (workdir, its config, the config's file)."""
    workdir = tmp_path_factory.mktemp("finished")
    config = quickstart_config(workdir, epochs=1)
    config["studies"]["quickstart"].update(regimes=["mini"], archs=["mlp"], seeds=[1])
    path = write_config(workdir, config)
    snakemake(workdir, path, "--cores", "1")
    return workdir, config, path


def dry_run(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    """A dry run of the default target with a changed config (its own file, beside the first)."""
    return snakemake(workdir, write_config(workdir, config, "changed.yaml"), "-n", *args)


def assert_nothing_to_do(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    assert planned_rules(result) == {} and "Nothing to be done" in output, output[-3000:]


@pytest.mark.slow  # a real workflow run (about a minute on 2 cores), then dry runs
def test_the_finished_study_is_up_to_date(finished):
    workdir, config, _ = finished
    assert_nothing_to_do(dry_run(workdir, config))


@pytest.mark.slow
def test_download_false_reruns_nothing(finished):
    """The README's own example: go offline after the data are there."""
    workdir, _, path = finished
    assert_nothing_to_do(snakemake(workdir, path, "-n", "--config", "download=false"))


@pytest.mark.slow
@pytest.mark.parametrize("change", ["add a missing folder", "remove one"])
def test_changed_local_sources_rerun_nothing(finished, change):
    workdir, config, _ = finished
    changed = copy.deepcopy(config)
    sources = changed["local_sources"]
    assert len(sources) >= 2  # config.yaml's: Debian's FashionMNIST and the offline MNIST copy
    changed["local_sources"] = (sources + [str(workdir / "no-such-folder")] if change.startswith("add")
                                else sources[1:])
    assert_nothing_to_do(dry_run(workdir, changed))


@pytest.mark.slow
@pytest.mark.parametrize("name, plan_expected", [
    # still no thesis table of that name: still no comparison, nothing to do
    ("scikit-learn digits", {}),
    # the thesis's name of a data set it has numbers for: the comparison appears, and the study
    # page that lays it out is made again; nothing else shows the name
    ("MNIST", {"thesis_comparison": 1, "study_page": 1}),
])
def test_a_new_paper_name_reruns_only_the_thesis_comparison(finished, name, plan_expected):
    workdir, config, _ = finished
    changed = copy.deepcopy(config)
    changed["datasets"]["digits"]["paper_name"] = name
    out = dry_run(workdir, changed)
    if not plan_expected:
        assert_nothing_to_do(out)
        return
    plan = planned_rules(out)
    assert {rule: n for rule, n in plan.items() if rule != "all"} == plan_expected, plan


@pytest.mark.slow
def test_another_studys_paper_name_reruns_nothing(finished):
    """mnist is no data set of the quickstart: its name is nothing to the quickstart's comparison."""
    workdir, config, _ = finished
    changed = copy.deepcopy(config)
    changed["datasets"]["mnist"]["paper_name"] = "MNIST (LeCun et al.)"
    assert_nothing_to_do(dry_run(workdir, changed))


@pytest.mark.slow
def test_a_setting_that_changes_results_reruns_from_the_split(finished):
    """The control: the dry runs above can plan jobs, and do when results change."""
    workdir, config, _ = finished
    changed = copy.deepcopy(config)
    changed["split"]["seed"] = config["split"]["seed"] + 7
    plan = planned_rules(dry_run(workdir, changed))
    assert {"split", "train", "evaluate"} <= set(plan), plan
    assert "download" not in plan and "prepare" not in plan, plan
    assert set(plan) - {"split", "train", "evaluate"} <= REPORTING, plan


# -- a torchvision data set, where acquisition settings are used --------------------------------------

NOWHERE = "http://127.0.0.1:9/"  # the discard port: nothing answers


@pytest.fixture(scope="module")
def fetched(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny MNIST-format data set (torchvision's MNIST class) fetched from a local source,
    offline, and one short run on it, finished: (workdir, its config)."""
    workdir = tmp_path_factory.mktemp("fetched")
    source = workdir / "source"
    md5 = write_mnist_like(source)
    config = base_config()
    config.update(data_root=str(workdir / "resources/data"), local_sources=[str(source)],
                  download=False, default_study="idx")
    config["datasets"] = {"tiny-idx": {"torchvision": "MNIST", "mirrors": [NOWHERE], "md5": md5,
                                       "paper_name": "MNIST"}}
    config["studies"] = {"idx": {"datasets": ["tiny-idx"], "regimes": ["mini"], "archs": ["mlp"],
                                 "seeds": [1], "train": {"epochs": 1, "depth": 2, "width": 8,
                                                         "batch_size": 50, "precise_batches": 2}}}
    config["report"].update(beta_layer=1, esm_layers=[1])
    snakemake(workdir, write_config(workdir, config), "--cores", "1")
    return workdir, config


@pytest.mark.slow
@pytest.mark.parametrize("change", ["another mirror", "no local sources", "download allowed"])
def test_where_a_torchvision_data_set_comes_from_reruns_nothing(fetched, change):
    """Mirrors and local copies say where archives come from; the md5s fix the files."""
    workdir, config = fetched
    changed = copy.deepcopy(config)
    if change == "another mirror":
        changed["datasets"]["tiny-idx"]["mirrors"] = ["http://127.0.0.1:9/elsewhere/"]
    elif change == "no local sources":
        changed["local_sources"] = []
    else:
        changed["download"] = True
    assert_nothing_to_do(dry_run(workdir, changed))


@pytest.mark.slow
def test_a_torchvision_data_sets_md5s_rerun_its_download(fetched):
    """The control: what identifies the files does reach the download rule."""
    workdir, config = fetched
    changed = copy.deepcopy(config)
    md5 = changed["datasets"]["tiny-idx"]["md5"]
    md5["t10k-labels-idx1-ubyte.gz"] = "0" * 32
    plan = planned_rules(dry_run(workdir, changed))
    assert {"download", "prepare", "split", "train"} <= set(plan), plan
