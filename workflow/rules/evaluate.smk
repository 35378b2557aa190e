# Test-set metrics of every estimator a run carries, on the run's final weights.


rule evaluate:
    input:
        data="results/data/{dataset}/tensors.pt",
        split="results/data/{dataset}/split.pt",
        model=f"{RUN}/model.pt",
        statistics=f"{RUN}/statistics.pt",
    output:
        f"{RUN}/metrics.csv",
    params:
        model=model_settings,
        device=config.get("device", "cpu"),
    threads: run_threads
    resources:
        gpu=gpus,
    log:
        f"results/logs/{RUN_NAME}_evaluate.log",
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/evaluate.py"
