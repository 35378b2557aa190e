"""Train one run (resuming from its checkpoint) and write its files."""

from pathlib import Path

import torch

from dmbn.allocator import allocator_settings
from dmbn.config import model_kwargs, train_config
from dmbn.data import load_run_data
from dmbn.logs import logging_to, run_history
from dmbn.models import build_model
from dmbn.train import train_run, write_run

w = snakemake.wildcards
settings = snakemake.params.settings
checkpoint = Path(snakemake.params.checkpoint)
# a resumed run's log keeps the earlier attempts' epochs
with logging_to(snakemake.log[0], history=run_history(checkpoint)) as log:
    if snakemake.threads != settings["threads"]:  # the Snakefile refuses this before any job
        raise RuntimeError(f"this job got {snakemake.threads} threads, but the run's identity says "
                           f"{settings['threads']}: run with --cores {settings['threads']} or more")
    torch.set_num_threads(snakemake.threads)
    log.info("glibc allocator: %s", allocator_settings() or "its defaults")  # timings depend on it
    # a member of the independent protocol trains from its own seed (dmbn.names.training_seed)
    cfg = train_config(settings["train"], w.regime, settings.get("seed", int(w.seed)), settings["device"], w.member)
    data = load_run_data(snakemake.input.data, snakemake.input.split, w.regime)
    torch.manual_seed(cfg.seed)
    model = build_model(w.arch, data.input_shape, data.num_classes, **model_kwargs(settings["train"]))
    log.info("run %s/%s/%s seed %s (%s): %s", w.dataset, w.regime, w.arch, w.seed, w.member, cfg)
    label = f"{w.dataset}/{w.regime}/{w.arch} seed {w.seed}" + ("" if w.member == "bank" else f" ({w.member})")
    result = train_run(model, data, cfg, checkpoint, label=label)
    write_run(result, Path(snakemake.output.esm).parent)
