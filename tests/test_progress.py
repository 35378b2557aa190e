"""The quiet terminal (`--logger dmbn`, snakemake_logger_plugin_dmbn): its estimate of the time
left against hand computations, and a real run that shows one progress line and no per-job
lines, and all of them with --verbose."""

from __future__ import annotations

import pytest
from snakemake_logger_plugin_dmbn.progress import StudyProgress, duration

from conftest import quickstart_config, snakemake, write_config


def test_the_estimate_is_each_rules_mean_over_the_jobs_seen_at_once():
    progress = StudyProgress()
    progress.plan({"train": 4, "evaluate": 4, "total": 8})
    progress.started(1, "train", 0.0)
    progress.started(2, "train", 0.0)       # two at a time
    assert progress.seconds_left(5.0) == (None, 2)  # nothing finished: no estimate
    progress.finished(1, 100.0)             # one train job: 100 s
    progress.started(3, "train", 100.0)
    # train: 3 left x 100 s, less job 2's 100 s and job 3's 20 s already spent; 2 at a time;
    # evaluate not timed yet (a lower bound)
    assert progress.seconds_left(120.0) == ((3 * 100 - 100 - 20) / 2, 1)
    progress.finished(2, 130.0)             # train mean (100 + 130) / 2 = 115
    progress.started(4, "evaluate", 130.0)
    progress.finished(4, 140.0)             # evaluate: 10 s
    left, untimed = progress.seconds_left(140.0)
    assert untimed == 0 and left == pytest.approx(((2 * 115 - 40) + 3 * 10) / 2)


def test_the_line_names_what_runs_and_whether_the_estimate_is_a_bound():
    progress = StudyProgress()
    progress.plan({"train": 2, "aggregate": 1, "total": 3})
    progress.started(1, "train", 0.0)
    assert progress.line(0, 3, 1.0) == "0/3 jobs (0 %) · running: train · time left: estimating"
    progress.finished(1, 60.0)
    progress.started(2, "train", 60.0)
    assert progress.line(1, 3, 60.0) == "1/3 jobs (33 %) · running: train · at least 1 min left (1 rule not timed yet)"
    assert duration(3725) == "1 h 02 min" and duration(59.4) == "59 s"
    progress.finished(2, 120.0)  # train done; only the untimed aggregate is left
    assert progress.line(2, 3, 120.0) == "2/3 jobs (66 %) · time left: estimating"


@pytest.mark.slow
def test_a_quiet_run_shows_progress_and_no_job_lines_and_verbose_shows_them(tmp_path):
    config = quickstart_config(tmp_path, epochs=1)
    config["studies"]["quickstart"].update(regimes=["mini"], archs=["mlp"], seeds=[1])
    path = write_config(tmp_path, config)
    target = "results/quickstart/runs/digits/mini/mlp/seed1/bank/metrics.csv"
    quiet = snakemake(tmp_path, path, "--cores", "1", "--logger=dmbn", target)
    shown = quiet.stdout + quiet.stderr
    assert "1/5 jobs (20 %) · time left: estimating" in shown and "5/5 jobs (100 %)" in shown, shown
    job_line = "INFO run digits/mini/mlp seed 1"  # the train job's first log line
    assert "rule train:" not in shown and job_line not in shown and "epoch 1/1" not in shown, shown
    log = (tmp_path / "results/logs/quickstart/digits_mini_mlp_seed1_bank_train.log").read_text()
    assert job_line in log and "epoch 1/1" in log
    loud = snakemake(tmp_path, path, "--cores", "1", "--logger=dmbn", "--verbose", "--forcerun=train", target)
    shown = loud.stdout + loud.stderr
    assert "rule train:" in shown and job_line in shown, shown[-3000:]
