# One training job per (study, dataset, regime, arch, seed): one trajectory carries every
# estimator. Its per-epoch checkpoint lives outside the declared outputs, so a killed or
# preempted job that Snakemake cleans up resumes where it stopped.


rule train:
    """Train one run (dataset, regime, arch, seed, member), every estimator riding along;
    resumes from its per-epoch checkpoint; writes the run's logs, weights, statistics and card."""
    input:
        data="results/data/{dataset}/tensors.pt",
        split="results/data/{dataset}/split.pt",
    output:
        esm=f"{RUN}/esm.csv",
        betas=f"{RUN}/betas.csv",
        history=f"{RUN}/history.csv",
        layers=f"{RUN}/layers.csv",
        model=f"{RUN}/model.pt",
        statistics=f"{RUN}/statistics.pt",
        card=f"{RUN}/{RUN_CARD}",
    params:
        settings=train_settings,
        checkpoint="results/{study}/checkpoints/{dataset}/{regime}/{arch}/seed{seed}/{member}.ckpt",
    threads: run_threads
    resources:
        gpu=gpus,
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    log:
        f"results/logs/{RUN_NAME}_train.log",
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/train.py"
