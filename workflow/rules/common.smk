# Target lists, input functions and wildcard constraints shared by every rule.

from snakemake.exceptions import WorkflowError

# The core library is the installed package `dmbn` (pip install -e .; `make run` does it).
from dmbn.config import (
    arch_train,
    check,
    load_strict,
    members,
    model_kwargs,
    paper_names as dataset_paper_names,
    run_expectation,
    report_settings,
    shift_batch_size,
    shift_grid,
    shift_studies,
    shift_settings,
    study_shift,
    study_batch_sizes,
    study_regimes,
    study_seeds,
    study_train,
)
from dmbn.names import (ARCH_PATTERN, PROTOCOLS, REGIME_PATTERN, RUN_CARD, SEPARATE_MEMBER, primary_arch, regime_label,
                        training_seed)
from dmbn.corruptions import CORRUPTIONS
from dmbn.tables import thesis_covers
from dmbn.report import (
    ALL_DATASETS,
    SHIFT_FIGURES,
    SHIFT_TABLES,
    ALL_REGIMES,
    BATCH_FIGURES,
    FIGURES,
    RUN_FIGURES,
    item_label,
)

CORRUPTION_PATTERN = "|".join(sorted(CORRUPTIONS, key=len, reverse=True))  # names are [a-z_]

for _configfile in workflow.configfiles:
    load_strict(_configfile)  # duplicate keys (e.g. two studies of one name) are errors
check(config)

DATA_ROOT = config["data_root"]
RUN = "results/{study}/runs/{dataset}/{regime}/{arch}/seed{seed}/{member}"
RUN_NAME = "{study}/{dataset}_{regime}_{arch}_seed{seed}_{member}"
REPORT = report_settings(config)  # the report block, defaults filled in
SHIFT = shift_settings(config)  # the shift block, defaults filled in
SHIFT_SET = "results/data/{dataset}/shift/{corruption}/severity{severity}"  # .npy and its .md5
THESIS_NUMBERS = workflow.source_path("../resources/paper_tables.csv")  # Tables 5.1-5.4


wildcard_constraints:
    study=r"[A-Za-z0-9_]+",
    dataset=r"[a-z0-9][a-z0-9-]*",
    regime=REGIME_PATTERN,
    arch=ARCH_PATTERN,
    seed=r"\d+",
    member=f"bank|{SEPARATE_MEMBER}",
    corruption=CORRUPTION_PATTERN,
    severity=r"[1-9]",


def study(wildcards):
    return config["studies"][wildcards.study]


def study_report_settings(wildcards):
    """The report settings of a study: the global ``report`` block updated by the study's."""
    return report_settings(config, wildcards.study)


def runs(study_name, **fixed):
    """Every run of a study as wildcard dicts, optionally with some wildcards fixed; ``expect``:
    the epochs and estimators its files should hold (checked where they are read back)."""
    spec = config["studies"][study_name]
    return [
        dict(study=study_name, dataset=d, regime=r, arch=a, seed=s, member=m,
             expect=run_expectation(config, study_name, r, m))
        for d in spec["datasets"]
        for r in study_regimes(config, study_name)
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


def arch_runs(wildcards):
    """The bank runs (every seed) of one data set, regime and architecture."""
    fixed = dict(dataset=wildcards.dataset, regime=wildcards.regime, arch=wildcards.arch)
    return [r for r in runs(wildcards.study, **fixed) if r["member"] == "bank"]


def arch_run_files(name):
    def inputs(wildcards):
        return [f"{RUN}/{name}".format(**r) for r in arch_runs(wildcards)]

    return inputs


def report_labels(item):
    """The labels of a report item (a function of its job's wildcards): the item, ordinal first,
    so the report lists a data set's items in the thesis's order, then regime, architecture, data
    set and study."""

    def labels(wildcards):
        w = dict(wildcards.items())
        plotted = item in FIGURES or item in BATCH_FIGURES
        arch = w.get("arch") or (primary_arch(study(wildcards)["archs"]) if plotted else "all")
        return {
            "item": item_label(item),
            "regime": regime_label(w["regime"]) if "regime" in w else ALL_REGIMES,
            "arch": arch,
            "dataset": w.get("dataset", ALL_DATASETS),
            "study": w["study"],
        }

    return labels


# A data set's config entry, by what each key can change. Acquisition keys say where archives come
# from, and every archive is checked by md5 wherever it comes from; labels only name the data set
# in tables. Neither may reach the params of a data rule: Snakemake re-runs a job whose params
# changed, and the download's and decoding's new files then re-run the split and every run of the
# data set (for `mlp`, about a hundred jobs) to the same results.
DATA_ACQUISITION = ("mirrors",)  # the global `download` and `local_sources` are acquisition too
DATA_LABELS = ("paper_name",)  # shown by the thesis comparison (rule thesis_comparison) only


def data_spec(dataset):
    """What identifies a data set's files: its config entry (torchvision class, md5s, digits'
    test_fraction) less acquisition and labels. Those are dropped by name, not the identifying
    keys kept by name, so that a key the schema gains later re-runs the data jobs (the safe side)
    until it is declared one or the other here."""
    entry = config["datasets"][dataset]
    return {k: v for k, v in entry.items() if k not in DATA_ACQUISITION + DATA_LABELS}


def paper_names(wildcards):
    """Data set -> its name in the thesis's tables, for a study's data sets only: renaming another
    study's data set changes nothing of this one."""
    return study_paper_names(wildcards.study)


def study_paper_names(study_name):
    return dataset_paper_names(config, config["studies"][study_name]["datasets"])


def thesis_has_numbers_for(study_name):
    """Whether the thesis reports any of a study's data sets in any of its regimes: only then does
    the study get a comparison with it (an item with no rows is no item)."""
    import pandas as pd

    return thesis_covers(pd.read_csv(THESIS_NUMBERS), study_paper_names(study_name),
                         study_regimes(config, study_name))


def train_settings(wildcards):
    """Everything that shapes a run's results; a change re-runs exactly the affected runs."""
    train = arch_train(study_train(config, wildcards.study, wildcards.regime), wildcards.arch)
    settings = dict(train=train, device=config.get("device", "cpu"), threads=run_threads(wildcards))
    seed = training_seed(int(wildcards.seed), wildcards.member, study(wildcards).get("protocol", "bank"))
    if seed != int(wildcards.seed):  # named only where it differs, so that no other run's identity changes
        settings["seed"] = seed
    return settings


def run_threads(wildcards):
    """Torch threads of a study's jobs: the study's ``threads``, else the global setting. Thread
    count changes float summation order, so it is part of a run's identity: a run that could not
    have them is refused before any job (``refuse_fewer_cores``)."""
    threads = study(wildcards).get("threads", config.get("threads", 1))
    refuse_fewer_cores(wildcards.study, threads)
    return threads


def refuse_fewer_cores(study_name, threads):
    """Snakemake silently lowers a job's threads to --cores (and --max-threads); a study's runs
    would then train with fewer threads than their identity, cards and comparisons say. A dry run
    (cores 1 unless given) is only a plan, and a cluster job gets its threads from SLURM."""
    if workflow.dryrun:
        return
    limits = {"--cores": workflow.resource_settings.cores,
              "--max-threads": workflow.resource_settings.max_threads}
    limits = {flag: n for flag, n in limits.items() if isinstance(n, int)}
    if limits and min(limits.values()) < threads:
        flag = min(limits, key=limits.get)
        key = f"studies.{study_name}.threads" if "threads" in config["studies"][study_name] else "threads"
        raise WorkflowError(
            f"{key}: {threads} torch threads per job for study {study_name!r}, but this run gives a "
            f"job at most {limits[flag]} ({flag} {limits[flag]}); Snakemake would run it with "
            f"{limits[flag]}, and the results would not be what the run's card and identity say. Run "
            f"with {flag} {threads} or more, or set {key} to {limits[flag]} (a different run)."
        )


def model_settings(wildcards):
    return model_kwargs(arch_train(study_train(config, wildcards.study, wildcards.regime), wildcards.arch))


def gpus(wildcards):
    return 1 if config.get("device", "cpu").startswith("cuda") else 0


def train_mem_mb(wildcards, attempt):
    return study(wildcards).get("resources", {}).get("mem_mb", 4000)


def train_runtime(wildcards, attempt):
    """Minutes; a retried job (time limit, preemption) asks for more."""
    return study(wildcards).get("resources", {}).get("runtime", 120) * attempt


def batch_sizes(wildcards):
    """Regime -> batch size (full batch: the training samples) of a study's runs on a data set."""
    return study_batch_sizes(config, wildcards.study, wildcards.dataset)


def batch_axis(study_name):
    """Whether a study gets the batch-size table and figures: it lists `batch_sizes`."""
    return "batch_sizes" in config["studies"][study_name]


def study_targets(study_name):
    spec = config["studies"][study_name]
    regimes = study_regimes(config, study_name)
    comparisons = ["thesis", "paired"] if thesis_has_numbers_for(study_name) else ["paired"]
    targets = [
        f"results/{study_name}/metrics.{ext}" for ext in ("csv", "html")
    ] + [
        f"results/{study_name}/comparisons/{name}.{ext}"
        for name in comparisons
        for ext in ("csv", "tex", "html")
    ]
    targets += [f"results/{study_name}/run_cards.{ext}" for ext in ("csv", "html")]
    targets.append(f"results/{study_name}/summaries/beta_star.csv")
    if "rounding_of" in spec:
        targets.append(f"results/{study_name}/comparisons/rounding.csv")
    if PROTOCOLS[spec.get("protocol", "bank")].per_beta:
        targets.append(f"results/{study_name}/comparisons/separate.csv")
    targets += expand(
        "results/{study}/tables/{dataset}.{ext}",
        study=study_name,
        dataset=spec["datasets"],
        ext=["tex", "csv", "html"],
    )
    targets += expand(
        "results/{study}/figures/{dataset}/{regime}/{figure}.{ext}",
        study=study_name,
        dataset=spec["datasets"],
        regime=regimes,
        figure=list(FIGURES),
        ext=["png", "pdf", "html"],
    )
    targets += expand(
        "results/{study}/figures/{dataset}/{regime}/{arch}/{figure}.{ext}",
        study=study_name,
        dataset=spec["datasets"],
        regime=regimes,
        arch=spec["archs"],
        figure=list(RUN_FIGURES),
        ext=["png", "pdf", "html"],
    )
    if batch_axis(study_name):
        targets += expand(
            "results/{study}/tables/{dataset}_batch_sizes.{ext}",
            study=study_name,
            dataset=spec["datasets"],
            ext=["tex", "csv", "html"],
        )
        targets += expand(
            "results/{study}/figures/{dataset}/batch_sizes/{figure}.{ext}",
            study=study_name,
            dataset=spec["datasets"],
            figure=list(BATCH_FIGURES),
            ext=["png", "pdf", "html"],
        )
    if study_name in shift_studies(config):
        targets += shift_targets(study_name)
    targets.append(f"results/{study_name}/index.html")
    return targets


def study_page_parts(wildcards):
    """The item pages a study's page lays out, in reading order: each data set's tables, then the
    figures (data set, regime, figure), then the comparisons. The metrics of every run (hundreds
    of rows) and the run cards (provenance, two dozen columns) stay in their own items."""
    study_folder = f"results/{wildcards.study}"
    own = {f"{study_folder}/{name}.html" for name in ("metrics", "run_cards", "index")}
    pages = [t for t in study_targets(wildcards.study) if t.endswith(".html") and t not in own]
    rank = {"tables": 0, "figures": 1}
    return sorted(pages, key=lambda page: rank.get(page.split("/")[2], 2))


# -- distribution shift (studies with `shift: true`; workflow/rules/shift.smk) ----------------------


def shift_set_files(dataset, grid):
    """The generated sets (.npy and .md5) of a data set, for (corruption, severity) in ``grid``."""
    return [f"{SHIFT_SET}.{ext}".format(dataset=dataset, corruption=c, severity=s) for c, s in grid for ext in ("npy", "md5")]


def study_grid(study_name, corruptions=None):
    """A study's (corruption, severity) sets (``study_shift``), or those of ``corruptions``."""
    own = study_shift(config, study_name)
    return [(c, s) for c in corruptions or own["corruptions"] for s in own["severities"]]


def shift_sets(wildcards):
    """One corruption's sets of a run's data set, at the study's severities: what its shift
    evaluation reads."""
    return shift_set_files(wildcards.dataset, study_grid(wildcards.study, [wildcards.corruption]))


def shift_study_sets(wildcards):
    """Every set a study is scored on, of one data set: what its example grid shows."""
    return shift_set_files(wildcards.dataset, study_grid(wildcards.study))


def shift_manifest_inputs(wildcards):
    sets = shift_set_files(wildcards.dataset, shift_grid(config, wildcards.dataset))
    return [f for f in sets if f.endswith(".md5")]


def shift_manifest_labels(wildcards):
    return [dict(corruption=c, severity=s) for c, s in shift_grid(config, wildcards.dataset)]


def shift_examples_grid(wildcards):
    """The (corruption, severity) pairs of ``shift_study_sets``, in its order."""
    return [list(pair) for pair in study_grid(wildcards.study)]


def shift_evaluation_settings(wildcards):
    """What a run's shift scores depend on besides its files: the shift block less the lists of
    corruptions and regimes (adding one adds jobs, it re-runs none), and the test batch size."""
    settings = {k: v for k, v in study_shift(config, wildcards.study).items() if k not in ("corruptions", "regimes")}
    return dict(settings, batch_size=shift_batch_size(config, wildcards.study, wildcards.regime))


def shift_runs(study_name):
    """The runs a study scores under shift: those of its shift mapping's ``regimes``, else all."""
    regimes = study_shift(config, study_name).get("regimes")
    return [r for r in runs(study_name) if regimes is None or r["regime"] in regimes]


def shift_run_files(kind):
    """Every scored run's shift scores of a study, each corruption (``kind``: scores or esm)."""
    suffix = "" if kind == "scores" else "_esm"

    def inputs(wildcards):
        corruptions = study_shift(config, wildcards.study)["corruptions"]
        return [f"{RUN}/shift/{corruption}{suffix}.csv".format(**r)
                for r in shift_runs(wildcards.study) for corruption in corruptions]

    return inputs


def shift_run_labels(wildcards):
    """The wildcards of each input of `shift_aggregate`, in the same order."""
    return [r for r in shift_runs(wildcards.study) for _ in study_shift(config, wildcards.study)["corruptions"]]


def shift_targets(study_name):
    spec = config["studies"][study_name]
    targets = expand("results/data/{dataset}/shift/manifest.csv", dataset=spec["datasets"])
    targets += [f"results/{study_name}/shift/{name}.csv" for name in ("scores", "esm")]
    targets += expand(
        "results/{study}/tables/{dataset}_{table}.{ext}",
        study=study_name,
        dataset=spec["datasets"],
        table=list(SHIFT_TABLES),
        ext=["tex", "csv", "html"],
    )
    targets += expand(
        "results/{study}/figures/{dataset}/shift/{figure}.{ext}",
        study=study_name,
        dataset=spec["datasets"],
        figure=list(SHIFT_FIGURES),
        ext=["png", "pdf", "html"],
    )
    return targets
