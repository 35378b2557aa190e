# Raw archives -> compact tensors -> the seeded, stratified 80/20 split.


rule download:
    """Local copies first (checked by md5), then torchvision's downloader. A local rule: cluster
    nodes often have no internet. Where archives come from (`download`, `local_sources`, a data
    set's `mirrors`) is deliberately not in params: the script reads it from the config, so that
    changing it re-runs nothing (the md5s, in params, fix the files wherever they come from)."""
    output:
        f"{DATA_ROOT}/{{dataset}}/fetched.json",
    params:
        spec=lambda w: data_spec(w.dataset),
        root=lambda w: f"{DATA_ROOT}/{w.dataset}",
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
        spec=lambda w: data_spec(w.dataset),
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
