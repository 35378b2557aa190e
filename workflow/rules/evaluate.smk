# Test-set metrics of every estimator a run carries, on the run's final weights.


rule evaluate:
    """Test-set metrics (accuracy, macro sensitivity, specificity, F1) of every estimator of a
    run, on its final weights."""
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
