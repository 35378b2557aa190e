# Distribution shift (issue #29): corrupted test sets generated once per data set, every run of a
# study with `shift: true` scored on them from its trained files (no training), and the study's
# shift tables and figures. Settings: config.yaml's `shift` block.

SHIFT_PLOTS = [name for name in SHIFT_FIGURES if name != "shift_examples"]  # from the scores


rule shift_set:
    """One corrupted test set (a corruption at a severity of the official test split), seeded, with
    its md5 beside it: every reader checks the set against it."""
    input:
        "results/data/{dataset}/tensors.pt",
    output:
        images=f"{SHIFT_SET}.npy",
        md5=f"{SHIFT_SET}.md5",
    params:
        seed=SHIFT["seed"],
    log:
        "results/logs/data/{dataset}_shift_{corruption}_severity{severity}.log",
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/shift_set.py"


rule shift_manifest:
    """The md5 of every generated set of a data set, one row per corruption and severity."""
    input:
        shift_manifest_inputs,
    output:
        "results/data/{dataset}/shift/manifest.csv",
    params:
        sets=shift_manifest_labels,
    log:
        "results/logs/data/{dataset}_shift_manifest.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/shift_manifest.py"


rule shift_evaluate:
    """One run's scores on one corruption's sets (every severity): accuracy of each estimator it
    carries, of each test-time rule on each test stream and of the recalibrated oracle, and each
    estimator's ESM against the shifted set's statistics. Evaluation only: the run's files."""
    input:
        data="results/data/{dataset}/tensors.pt",
        split="results/data/{dataset}/split.pt",
        model=f"{RUN}/model.pt",
        statistics=f"{RUN}/statistics.pt",
        sets=shift_sets,
    output:
        scores=f"{RUN}/shift/{{corruption}}.csv",
        esm=f"{RUN}/shift/{{corruption}}_esm.csv",
    params:
        model=model_settings,
        shift=shift_evaluation_settings,
        device=config.get("device", "cpu"),
    threads: run_threads
    resources:
        gpu=gpus,
    log:
        f"results/logs/{RUN_NAME}_shift_{{corruption}}.log",
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/shift_evaluate.py"


rule shift_aggregate:
    """Every run's shift scores and ESM of a study, one long table each, with the run's labels, and
    ESM_μ per BN layer in one row per run, set and estimator (what is published: the long ESM
    table runs to tens of MB)."""
    input:
        scores=shift_run_files("scores"),
        esm=shift_run_files("esm"),
    output:
        scores="results/{study}/shift/scores.csv",
        esm="results/{study}/shift/esm.csv",
        esm_mu="results/{study}/shift/esm_mu_by_layer.csv",
    params:
        runs=shift_run_labels,
    log:
        "results/logs/{study}/shift_aggregate.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/shift_aggregate.py"


rule shift_examples:
    """A grid of example test images: the clean one, then each corruption at each severity the
    study is scored on."""
    input:
        data="results/data/{dataset}/tensors.pt",
        sets=shift_study_sets,
        caption=workflow.source_path("../report/shift_examples.rst"),
    output:
        png="results/{study}/figures/{dataset}/shift/shift_examples.png",
        pdf="results/{study}/figures/{dataset}/shift/shift_examples.pdf",
        html=report(
            "results/{study}/figures/{dataset}/shift/shift_examples.html",
            caption="../report/shift_examples.rst",
            category="{dataset}",
            subcategory="{study}",
            labels=report_labels("shift_examples"),
        ),
    params:
        grid=shift_examples_grid,
        dpi=REPORT["figure_dpi"],
    log:
        "results/logs/{study}/shift_examples_{dataset}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/shift_examples.py"


rule shift_tables:
    """One data set's shift tables (dmbn.shift_tables): accuracy per corruption and per severity,
    error relative to the default EMA, test-time rows on each stream; CSV, LaTeX and HTML."""
    input:
        scores="results/{study}/shift/scores.csv",
        captions=[workflow.source_path(f"../report/{name}.rst") for name in SHIFT_TABLES],
    output:
        csv=[f"results/{{study}}/tables/{{dataset}}_{name}.csv" for name in SHIFT_TABLES],
        tex=[f"results/{{study}}/tables/{{dataset}}_{name}.tex" for name in SHIFT_TABLES],
        html=[
            report(
                f"results/{{study}}/tables/{{dataset}}_{name}.html",
                caption=f"../report/{name}.rst",
                category="{dataset}",
                subcategory="{study}",
                labels=report_labels(name),
            )
            for name in SHIFT_TABLES
        ],
    params:
        confidence=lambda w: study_report_settings(w)["confidence"],
        decimals=REPORT["decimals"],
    log:
        "results/logs/{study}/shift_tables_{dataset}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/shift_tables.py"


rule shift_figures:
    """Accuracy against severity, and each trained estimator's ESM on the shifted set against its
    accuracy there, for one data set."""
    input:
        scores="results/{study}/shift/scores.csv",
        esm="results/{study}/shift/esm.csv",
        severities="results/{study}/tables/{dataset}_shift_severities.csv",
        captions=[workflow.source_path(f"../report/{name}.rst") for name in SHIFT_PLOTS],
    output:
        png=[f"results/{{study}}/figures/{{dataset}}/shift/{name}.png" for name in SHIFT_PLOTS],
        pdf=[f"results/{{study}}/figures/{{dataset}}/shift/{name}.pdf" for name in SHIFT_PLOTS],
        html=[
            report(
                f"results/{{study}}/figures/{{dataset}}/shift/{name}.html",
                caption=f"../report/{name}.rst",
                category="{dataset}",
                subcategory="{study}",
                labels=report_labels(name),
            )
            for name in SHIFT_PLOTS
        ],
    params:
        dpi=REPORT["figure_dpi"],
    log:
        "results/logs/{study}/shift_figures_{dataset}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/shift_figures.py"
