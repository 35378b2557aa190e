"""A run's thread count is what its identity, card and comparisons say (issue #24, item 1).

Snakemake lowers a job's threads to ``--cores`` (and ``--max-threads``) without a word; a study
configured for 2 threads run with ``--cores 1`` trained with 1 and reported a rounding difference
of exactly zero. Such a run is now refused before any job, naming the study, threads and cores."""

from __future__ import annotations

import json

import pytest

from conftest import quickstart_config, snakemake, write_config

RUN = "results/quickstart/runs/digits/mini/mlp/seed1/bank"


def two_thread_study(workdir, study_level: bool = True):
    config = quickstart_config(workdir, epochs=1)
    config["studies"]["quickstart"].update(regimes=["mini"], archs=["mlp"], seeds=[1])
    if study_level:
        config["studies"]["quickstart"]["threads"] = 2
    else:
        config["threads"] = 2
    return write_config(workdir, config)


@pytest.mark.slow
@pytest.mark.parametrize("study_level, limit, key", [
    (True, ["--cores", "1"], "studies.quickstart.threads: 2"),
    (False, ["--cores", "1"], "threads: 2"),
    (True, ["--cores", "2", "--max-threads", "1"], "studies.quickstart.threads: 2"),
])
def test_a_study_with_more_threads_than_cores_is_refused_before_any_job(tmp_path, study_level, limit, key):
    result = snakemake(tmp_path, two_thread_study(tmp_path, study_level), *limit, f"{RUN}/metrics.csv",
                       check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    flag = limit[-2]
    assert key in output and "'quickstart'" in output and f"{flag} 1" in output, output[-3000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


@pytest.mark.slow
def test_a_study_with_enough_cores_trains_with_its_threads(tmp_path):
    """The control: with --cores 2 the same study runs, and its card says 2 threads."""
    snakemake(tmp_path, two_thread_study(tmp_path), "--cores", "2", f"{RUN}/metrics.csv")
    assert json.loads((tmp_path / RUN / "card.json").read_text())["threads"] == 2


@pytest.mark.slow
def test_a_dry_run_plans_a_two_thread_study_without_cores(tmp_path):
    """A dry run (cores 1 unless given) is a plan, not a run: it is not refused."""
    result = snakemake(tmp_path, two_thread_study(tmp_path), "-n", f"{RUN}/metrics.csv")
    assert "train" in result.stdout
