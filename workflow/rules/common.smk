# Target lists, input functions and wildcard constraints shared by every rule.

# The core library is the installed package `dmbn` (pip install -e .; `make run` does it).
from dmbn.config import (
    check,
    load_strict,
    members,
    model_kwargs,
    study_seeds,
    study_train,
)
from dmbn.names import REGIMES, RUN_CARD

for _configfile in workflow.configfiles:
    load_strict(_configfile)  # duplicate keys (e.g. two studies of one name) are errors
check(config)

DATA_ROOT = config["data_root"]
RUN = "results/{study}/runs/{dataset}/{regime}/{arch}/seed{seed}/{member}"
RUN_NAME = "{study}/{dataset}_{regime}_{arch}_seed{seed}_{member}"
FIGURES = [
    "beta_star",
    "esm_dmbn_vs_default",
    "esm_dmbn_vs_bnbfn",
    "beta_star_heatmap",
    "esm_vs_depth",
    "accuracy_vs_beta",
]


wildcard_constraints:
    study=r"[A-Za-z0-9_]+",
    dataset=r"[a-z0-9][a-z0-9-]*",
    regime="|".join(REGIMES),
    arch=r"mlp|mlp-bnbfn|resnet50|resnet50-xbnblock-p2",
    seed=r"\d+",
    member=r"bank|static-[0-9.]+",


def study(wildcards):
    return config["studies"][wildcards.study]


def runs(study_name, **fixed):
    """Every run of a study as wildcard dicts, optionally with some wildcards fixed."""
    spec = config["studies"][study_name]
    return [
        dict(study=study_name, dataset=d, regime=r, arch=a, seed=s, member=m)
        for d in spec["datasets"]
        for r in spec["regimes"]
        for a in spec["archs"]
        for s in study_seeds(config, study_name, r)
        for m in members(config, study_name)
        if all(str(dict(dataset=d, regime=r, arch=a)[k]) == str(v) for k, v in fixed.items())
    ]


def run_files(name, study_name, **fixed):
    return [f"{RUN}/{name}".format(**r) for r in runs(study_name, **fixed)]


def run_metrics(wildcards):
    return run_files("metrics.csv", wildcards.study)


def run_labels(wildcards):
    """The wildcards of each input of `aggregate`, in the same order."""
    return runs(wildcards.study)


def figure_runs(name):
    def inputs(wildcards):
        return run_files(
            name, wildcards.study, dataset=wildcards.dataset, regime=wildcards.regime
        )

    return inputs


def figure_labels(wildcards):
    return runs(wildcards.study, dataset=wildcards.dataset, regime=wildcards.regime)


def train_settings(wildcards):
    """Everything that shapes a run's results; a change re-runs exactly the affected runs."""
    train = study_train(config, wildcards.study, wildcards.regime)
    return dict(train=train, device=config.get("device", "cpu"), threads=run_threads(wildcards))


def run_threads(wildcards):
    """Torch threads of a study's jobs: the study's ``threads``, else the global setting. Thread
    count changes float summation order, so it is part of a run's identity."""
    return study(wildcards).get("threads", config.get("threads", 1))


def model_settings(wildcards):
    return model_kwargs(study_train(config, wildcards.study, wildcards.regime))


def gpus(wildcards):
    return 1 if config.get("device", "cpu").startswith("cuda") else 0


def train_mem_mb(wildcards, attempt):
    return study(wildcards).get("resources", {}).get("mem_mb", 4000)


def train_runtime(wildcards, attempt):
    """Minutes; a retried job (time limit, preemption) asks for more."""
    return study(wildcards).get("resources", {}).get("runtime", 120) * attempt


def study_targets(study_name):
    spec = config["studies"][study_name]
    targets = [
        f"results/{study_name}/metrics.csv",
        f"results/{study_name}/comparisons/thesis.csv",
        f"results/{study_name}/comparisons/paired.csv",
        f"results/{study_name}/summaries/beta_star.csv",
    ]
    if "rounding_of" in spec:
        targets.append(f"results/{study_name}/comparisons/rounding.csv")
    targets += expand(
        "results/{study}/tables/{dataset}.{ext}",
        study=study_name,
        dataset=spec["datasets"],
        ext=["tex", "csv"],
    )
    targets += expand(
        "results/{study}/figures/{dataset}/{regime}/{figure}.{ext}",
        study=study_name,
        dataset=spec["datasets"],
        regime=spec["regimes"],
        figure=FIGURES,
        ext=["png", "pdf"],
    )
    return targets
