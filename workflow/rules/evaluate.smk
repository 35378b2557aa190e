# Test-set metrics of every estimator a run carries, on the run's final weights.


rule evaluate:
    input:
        data="results/data/{dataset}/tensors.pt",
        split="results/data/{dataset}/split.pt",
        model=RUN + "/model.pt",
        statistics=RUN + "/statistics.pt",
    output:
        RUN + "/metrics.csv",
    params:
        model=model_settings,
        device=config.get("device", "cpu"),
    threads: config.get("threads", 1)
    resources:
        gpu=gpus,
    log:
        f"results/logs/{RUN_NAME}_evaluate.log",
    script:
        "../scripts/evaluate.py"
