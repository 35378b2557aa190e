"""The workflow on a real single-node SLURM cluster, through profiles/slurm.

tests/slurm/setup.sh installs and starts SLURM (munged, slurmctld, slurmd; no accounting) and
tests/slurm/teardown.sh stops exactly those daemons, so these tests need root on a Debian-like
machine with apt-get; elsewhere, or with DMBN_SKIP_SLURM set, they are skipped. Run them alone with

    python -m pytest -m slurm -s tests/test_slurm.py

(-s shows the SLURM jobs each run submitted and the wall times).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, SNAKEFILE, quickstart_config, write_config

HERE = Path(__file__).resolve().parent
PROFILE = ROOT / "profiles" / "slurm"
STATE = Path(os.environ.get("DMBN_SLURM_STATE", "/tmp/dmbn-slurm-test"))
PARTITION = os.environ.get("DMBN_SLURM_PARTITION", "debug")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
STUDY = "quickstart"
ARCHS = ["mlp", "mlp-bnbfn"]
METRICS = f"results/{STUDY}/metrics.csv"  # the local reference runs (and case 2) stop there
LIMIT = 1800  # seconds per snakemake invocation, far beyond the slowest (loaded) machine's 200 s (timeout -k 30: Snakemake ignores SIGTERM while waiting on SLURM)


def _skip_reason() -> str | None:
    if os.environ.get("DMBN_SKIP_SLURM"):
        return "DMBN_SKIP_SLURM is set"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "needs root on Linux to install and start a real SLURM cluster"
    if shutil.which("apt-get") is None or not Path("/etc/debian_version").exists():
        return "needs a Debian-like machine with apt-get to install SLURM"
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        if not (SYSTEM_CONF.is_symlink() and os.readlink(SYSTEM_CONF) == str(STATE / "slurm.conf")):
            return f"{SYSTEM_CONF} exists: a real SLURM installation here, which the test cluster would replace"
    return None


SKIP = _skip_reason()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

ENV = {**os.environ, "SLURM_CONF": str(STATE / "slurm.conf"), "DMBN_SLURM_PARTITION": PARTITION}


def sh(*command: str, check: bool = True, timeout: int = 300) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def cluster():
    """A running single-node SLURM cluster for the module; always torn down."""
    started = time.monotonic()
    try:
        setup = subprocess.run(["bash", str(HERE / "slurm" / "setup.sh"), str(STATE)],
                               capture_output=True, text=True, env=ENV, timeout=900)
        print(f"\n{setup.stdout}{setup.stderr}[slurm setup] {time.monotonic() - started:.1f} s", flush=True)
        if setup.returncode != 0:
            pytest.fail(f"tests/slurm/setup.sh failed ({setup.returncode}):\n{setup.stdout}\n{setup.stderr}")
        print(sh("sinfo"), flush=True)
        yield STATE
    finally:
        teardown = subprocess.run(["bash", str(HERE / "slurm" / "teardown.sh"), str(STATE)],
                                  capture_output=True, text=True, env=ENV, timeout=600)
        print(f"\n{teardown.stdout}{teardown.stderr}", flush=True)


# -- running the workflow -----------------------------------------------------------------------------

def small_study(workdir: Path, epochs: int) -> Path:
    """The quickstart study cut to one data set, one regime, one seed, two architectures: one
    SLURM `prepare`, two `train` and two `evaluate` jobs. One torch thread per job, so that runs
    are bit-for-bit reproducible wherever they run."""
    config = quickstart_config(workdir, epochs=epochs)
    config["threads"] = 1
    config["studies"][STUDY].update(datasets=["digits"], regimes=["mini"], archs=ARCHS, seeds=[1])
    return write_config(workdir, config)


def slurm_args() -> list[str]:
    """profiles/slurm as a user of this cluster would use it: the partition filled in (beside the
    profile's other default resources), no account, and squeue for job states (no slurmdbd)."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    defaults = [f"{key}={value}" for key, value in profile["default-resources"].items()]
    return ["--profile", str(PROFILE), "--default-resources", *defaults, f"slurm_partition={PARTITION}",
            "--slurm-no-account", "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", "5"]


def start(workdir: Path, config: Path, *args: str) -> subprocess.Popen:
    """Snakemake in the background, its output in workdir/snakemake.out."""
    command = ["timeout", "-k", "30", str(LIMIT), sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE),
               "-d", str(workdir), "--configfile", str(config), *args]
    with open(workdir / "snakemake.out", "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=ENV, cwd=workdir)
    process.started = time.monotonic()
    return process


def finish(process: subprocess.Popen, workdir: Path) -> tuple[str, float]:
    """Wait for a start()ed Snakemake; its output and wall time. Fails on a non-zero exit."""
    rc = process.wait(timeout=LIMIT + 60)
    wall = time.monotonic() - process.started
    output = (workdir / "snakemake.out").read_text()
    assert rc == 0, f"snakemake failed ({rc}{', timed out' if rc in (124, 137) else ''}):\n{output[-6000:]}"
    return output, wall


def run(workdir: Path, config: Path, *args: str) -> tuple[str, float]:
    return finish(start(workdir, config, *args), workdir)


def run_id(output: str) -> str:
    match = re.search(r"SLURM run ID: (\S+)", output)
    assert match, "no SLURM run ID in Snakemake's output: did it use the slurm executor?"
    return match.group(1)


def slurm_jobs(run: str) -> list[dict]:
    """Every SLURM job of one Snakemake run (the plugin names them after the run ID; MinJobAge=600
    keeps finished ones in squeue). The comment is rule_<rule>_wildcards_<values>."""
    lines = sh("squeue", "--states=all", "--noheader", "--name", run, "--format=%i|%T|%l|%k").split("\n")
    jobs = []
    for line in filter(None, lines):
        jobid, state, limit, comment = line.strip().split("|", 3)
        rule, _, wildcards = comment.strip().removeprefix("rule_").partition("_wildcards_")
        jobs.append(dict(jobid=int(jobid), state=state, time_limit=limit, rule=rule, wildcards=wildcards))
    return sorted(jobs, key=lambda job: job["jobid"])


def submitted(output: str) -> dict[int, int]:
    """Snakemake job id -> SLURM job id, as Snakemake reported its submissions."""
    return {int(slurm): int(job) for job, slurm in
            re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)}


def expected_slurm_jobs() -> set[tuple[str, str]]:
    """The non-local jobs of small_study(); download, split, aggregate, table, compare, figures
    and all are local rules and run beside Snakemake."""
    runs = {f"{STUDY}_digits_mini_{arch}_1_bank" for arch in ARCHS}
    return {("prepare", "digits")} | {(rule, run) for rule in ("train", "evaluate") for run in runs}


def report(title: str, jobs: list[dict], wall: float, local_wall: float) -> None:
    print(f"\n== {title}: {len(jobs)} SLURM jobs; Snakemake wall time {wall:.1f} s "
          f"(same study locally up to metrics.csv, --cores 2: {local_wall:.1f} s)")
    print(f"   {'jobid':>5}  {'state':<10} {'limit':>8}  rule      wildcards")
    for job in jobs:
        print(f"   {job['jobid']:>5}  {job['state']:<10} {job['time_limit']:>8}  {job['rule']:<9} {job['wildcards']}")
    sys.stdout.flush()


def metrics(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / f"results/{STUDY}/metrics.csv")


# -- the tests ------------------------------------------------------------------------------------------

@pytest.mark.slurm
def test_study_through_slurm_profile_equals_local_run(cluster, tmp_path):
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()
    output, wall = run(slurm_dir, small_study(slurm_dir, epochs=2), *slurm_args())
    jobs = slurm_jobs(run_id(output))
    _, local_wall = run(local_dir, small_study(local_dir, epochs=2), "--cores", "2", METRICS)
    report("quickstart (2 epochs) through profiles/slurm", jobs, wall, local_wall)

    assert "Using profile" in output and str(PROFILE) in output
    # every non-local job went through SLURM, once, and completed; no local rule did
    assert {(job["rule"], job["wildcards"]) for job in jobs} == expected_slurm_jobs()
    assert len(jobs) == len(expected_slurm_jobs())
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    assert sorted(submitted(output)) == [job["jobid"] for job in jobs]
    # train asks for its study's runtime (120 min at attempt 1), the others the profile's 60 min
    assert {job["time_limit"] for job in jobs if job["rule"] == "train"} == {"2:00:00"}
    assert {job["time_limit"] for job in jobs if job["rule"] != "train"} == {"1:00:00"}
    # to the end: tables, comparisons and figures (local rules) too
    for target in ("tables/digits.tex", "comparisons/paired.csv", "figures/digits/mini/beta_star.png"):
        assert (slurm_dir / f"results/{STUDY}" / target).stat().st_size > 0, target
    # the same numbers as on a workstation, to the last bit
    pd.testing.assert_frame_equal(metrics(slurm_dir), metrics(local_dir), check_exact=True)
    assert len(metrics(slurm_dir)) == len(ARCHS) * 13


def checkpoint(workdir: Path, arch: str) -> Path:
    return workdir / f"results/{STUDY}/checkpoints/digits/mini/{arch}/seed1/bank.ckpt"


def checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


def interrupt_training(process: subprocess.Popen, workdir: Path, epochs: int, action: str) -> dict:
    """Wait for a running training job whose checkpoint holds epoch >= 2, then ``action`` it
    (``scancel``, or ``requeue``: ``scontrol requeue``); the victim job, its arch and epoch."""
    deadline = time.monotonic() + LIMIT
    while True:
        assert process.poll() is None, (workdir / "snakemake.out").read_text()[-6000:]
        assert time.monotonic() < deadline, "no training checkpoint appeared"
        time.sleep(0.25)
        match = re.search(r"SLURM run ID: (\S+)", (workdir / "snakemake.out").read_text())
        if not match:
            continue
        running = {job["wildcards"]: job for job in slurm_jobs(match.group(1))
                   if job["rule"] == "train" and job["state"] == "RUNNING"}
        for arch in ARCHS:
            job = running.get(f"{STUDY}_digits_mini_{arch}_1_bank")
            epoch = checkpoint_epoch(checkpoint(workdir, arch))
            if job and 2 <= epoch < epochs:
                sh(*(["scancel"] if action == "scancel" else ["scontrol", "requeue"]), str(job["jobid"]))
                print(f"\n   {action} {job['jobid']} (train {arch}) after epoch {epoch} of {epochs}, "
                      f"{time.monotonic() - process.started:.1f} s into the run", flush=True)
                return dict(arch=arch, epoch=epoch, **job)


def stop(process: subprocess.Popen) -> None:
    """After a failed assertion: stop our Snakemake (it cancels its jobs)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def train_log(workdir: Path, arch: str) -> str:
    return (workdir / f"results/logs/{STUDY}/digits_mini_{arch}_seed1_bank_train.log").read_text()


def assert_same_results(slurm_dir: Path, local_dir: Path, arch: str) -> None:
    pd.testing.assert_frame_equal(metrics(slurm_dir), metrics(local_dir), check_exact=True)
    run_dir = f"results/{STUDY}/runs/digits/mini/{arch}/seed1/bank"
    for name in ("history.csv", "esm.csv", "betas.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(slurm_dir / run_dir / name), pd.read_csv(local_dir / run_dir / name),
                                      check_exact=True)


def job_details(jobid: int) -> dict[str, str]:
    """``scontrol show job`` as key -> value (Restarts, Requeue, JobState, ...)."""
    return dict(field.split("=", 1) for field in sh("scontrol", "show", "job", "-o", str(jobid)).split()
                if "=" in field)


@pytest.mark.slurm
def test_cancelled_training_job_is_retried_and_resumes(cluster, tmp_path):
    """Up to metrics.csv through SLURM, and scancel a training job mid-run: Snakemake's retry
    resubmits it with attempt 2 (twice the time limit), training resumes from its last per-epoch
    checkpoint, and the results equal an uninterrupted run's."""
    epochs = 40
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()
    process = start(slurm_dir, small_study(slurm_dir, epochs=epochs), *slurm_args(), METRICS)
    try:
        victim = interrupt_training(process, slurm_dir, epochs, "scancel")
        output, wall = finish(process, slurm_dir)
    finally:
        stop(process)
    jobs = slurm_jobs(run_id(output))
    _, local_wall = run(local_dir, small_study(local_dir, epochs=epochs), "--cores", "2", METRICS)
    report(f"quickstart ({epochs} epochs) through profiles/slurm, one training job cancelled", jobs, wall,
           local_wall)

    # the cancelled job, then a second submission of the same run with attempt 2's time limit
    mine = [job for job in jobs if job["rule"] == "train" and job["wildcards"] == victim["wildcards"]]
    assert [job["state"] for job in mine] == ["CANCELLED", "COMPLETED"], mine
    assert mine[0]["jobid"] == victim["jobid"]
    assert [job["time_limit"] for job in mine] == ["2:00:00", "4:00:00"]
    assert "Trying to restart job" in output
    # every other job ran once
    others = [(job["rule"], job["wildcards"]) for job in jobs if job not in mine]
    assert sorted(others) == sorted(expected_slurm_jobs() - {("train", victim["wildcards"])})
    assert all(job["state"] == "COMPLETED" for job in jobs if job not in mine[:1])

    log = train_log(slurm_dir, victim["arch"])
    resumed = re.search(r"resumed from (\S+) after epoch (\d+)", log)
    assert resumed, log[-3000:]
    print(f"   train log of job {mine[1]['jobid']}: {resumed.group(0)}", flush=True)
    assert Path(resumed.group(1)).name == "bank.ckpt"
    assert victim["epoch"] <= int(resumed.group(2)) < epochs
    assert f"epoch {epochs}/{epochs}" in log
    assert_same_results(slurm_dir, local_dir, victim["arch"])


@pytest.mark.slurm
def test_requeued_training_job_resumes_under_its_job_id(cluster, tmp_path):
    """Preemption with PreemptMode=REQUEUE, by hand: `scontrol requeue` a running training job.
    SLURM kills it and runs it again under the same job id (the profile's `slurm-requeue: true`
    makes every job requeueable; the test cluster's JobRequeue=0 would refuse the requeue
    otherwise); Snakemake, which sees it PENDING and then RUNNING, waits; the
    job resumes from its checkpoint, its log keeps the first attempt's epochs, and the results
    equal an uninterrupted run's."""
    epochs = 40
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()
    process = start(slurm_dir, small_study(slurm_dir, epochs=epochs), *slurm_args(), METRICS)
    try:
        victim = interrupt_training(process, slurm_dir, epochs, "requeue")
        # SLURM holds a requeued job for two minutes (BeginTime); release it once it is PENDING
        deadline = time.monotonic() + 600  # SLURM sets PENDING within seconds; a bound, not a guess
        while job_details(victim["jobid"])["JobState"] != "PENDING" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert job_details(victim["jobid"])["JobState"] == "PENDING"
        first_attempt = train_log(slurm_dir, victim["arch"])
        sh("scontrol", "update", f"JobId={victim['jobid']}", "StartTime=now")
        output, wall = finish(process, slurm_dir)
    finally:
        stop(process)
    jobs = slurm_jobs(run_id(output))
    _, local_wall = run(local_dir, small_study(local_dir, epochs=epochs), "--cores", "2", METRICS)
    report(f"quickstart ({epochs} epochs) through profiles/slurm, one training job requeued", jobs, wall,
           local_wall)

    # one SLURM job per run, the requeued one included: it ran twice under its job id
    assert {(job["rule"], job["wildcards"]) for job in jobs} == expected_slurm_jobs()
    assert len(jobs) == len(expected_slurm_jobs())
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    details = job_details(victim["jobid"])
    assert (details["Restarts"], details["Requeue"]) == ("1", "1"), details
    assert {job["time_limit"] for job in jobs if job["rule"] == "train"} == {"2:00:00"}
    assert "Trying to restart job" not in output  # not a Snakemake retry

    log = train_log(slurm_dir, victim["arch"])
    assert log.startswith(first_attempt)  # the first attempt's lines survive the second
    resumed = re.search(r"resumed from (\S+) after epoch (\d+)", log)
    assert resumed, log[-3000:]
    print(f"   train log of job {victim['jobid']}: {resumed.group(0)}", flush=True)
    assert Path(resumed.group(1)).name == "bank.ckpt"
    after = int(resumed.group(2))
    assert victim["epoch"] <= after < epochs
    # every epoch's progress line once (the resumed epoch's may be missing: killed between its
    # checkpoint and its line)
    counts = {epoch: log.count(f"epoch {epoch}/{epochs} ") for epoch in range(1, epochs + 1)}
    assert all(count == 1 for epoch, count in counts.items() if epoch != after), counts
    assert counts[after] <= 1
    assert_same_results(slurm_dir, local_dir, victim["arch"])
