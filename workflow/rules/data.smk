# Raw archives -> compact tensors -> the seeded, stratified 80/20 split.


rule download:
    """Local copies first (checked by md5), then torchvision's downloader. A local rule: cluster
    nodes often have no internet."""
    output:
        f"{DATA_ROOT}/{{dataset}}/fetched.json",
    params:
        spec=lambda w: config["datasets"][w.dataset],
        root=lambda w: f"{DATA_ROOT}/{w.dataset}",
        sources=config.get("local_sources", []),
        download=config.get("download", True),
    log:
        "results/logs/data/{dataset}_download.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/download.py"


rule prepare:
    """Decode the archives with torchvision once, into uint8 tensors."""
    input:
        rules.download.output,
    output:
        "results/data/{dataset}/tensors.pt",
    params:
        spec=lambda w: config["datasets"][w.dataset],
        root=lambda w: f"{DATA_ROOT}/{w.dataset}",
    log:
        "results/logs/data/{dataset}_prepare.log",
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/prepare.py"


rule split:
    """Stratified, seeded train/validation indices; validation is the mini-batch ESM set."""
    input:
        rules.prepare.output,
    output:
        "results/data/{dataset}/split.pt",
    params:
        fraction=config["split"]["validation_fraction"],
        seed=config["split"]["seed"],
    log:
        "results/logs/data/{dataset}_split.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/split.py"
