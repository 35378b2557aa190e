"""The jobs run with glibc's allocator settings (dmbn.allocator), and a user's own value wins."""

import os

from dmbn.allocator import GLIBC_MALLOC, allocator_settings, export_allocator_settings

from conftest import quickstart_config, snakemake, write_config

MMAP, TRIM = "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"


def test_the_settings_fill_in_only_what_the_user_left_unset():
    environ = {TRIM: "12345", "PATH": "/bin"}
    assert export_allocator_settings(environ) == {MMAP: "4294967296", TRIM: "12345"}
    assert environ == {MMAP: "4294967296", TRIM: "12345", "PATH": "/bin"}
    assert allocator_settings({"PATH": "/bin"}) == {}
    assert int(GLIBC_MALLOC[MMAP]) == 4 * 2**30 and int(GLIBC_MALLOC[TRIM]) == 64 * 2**30


def test_the_jobs_get_the_settings_from_the_snakefile_and_log_them(tmp_path):
    config = quickstart_config(tmp_path, epochs=1)
    config["studies"]["quickstart"].update(regimes=["mini"], archs=["mlp"], seeds=[1])
    target = "results/quickstart/runs/digits/mini/mlp/seed1/bank/metrics.csv"
    snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1", target, env={TRIM: "12345"})  # the user's
    mmap = os.environ.get(MMAP, "4294967296")  # a value already in the environment wins too
    logs = tmp_path / "results/logs/quickstart"
    for job in ("train", "evaluate"):
        log = (logs / f"digits_mini_mlp_seed1_bank_{job}.log").read_text()
        assert f"glibc allocator: {{'{MMAP}': '{mmap}', '{TRIM}': '12345'}}" in log, log[:2000]
