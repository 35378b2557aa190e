# Per study: the long metrics table, thesis-layout tables, comparisons, run cards and figures.
# Tables reach the report as HTML pages (pandas Styler, the same object that writes the LaTeX),
# figures as HTML pages holding the PNG with its caption below; every item carries labels (item,
# regime, arch, dataset, study) that order it.


rule aggregate:
    """The study's long metrics table (one row per run and estimator), as CSV and as HTML."""
    input:
        metrics=run_metrics,
        caption=workflow.source_path("../report/metrics.rst"),
    output:
        csv="results/{study}/metrics.csv",
        html=report(
            "results/{study}/metrics.html",
            caption="../report/metrics.rst",
            category=ALL_DATASETS,
            subcategory="{study}",
            labels=report_labels("metrics"),
        ),
    params:
        runs=run_labels,
        decimals=REPORT["decimals"],
    log:
        "results/logs/{study}/aggregate.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/aggregate.py"


rule table:
    """One table per data set in the thesis's layout: LaTeX (booktabs), HTML and its CSV twin."""
    input:
        metrics="results/{study}/metrics.csv",
        caption=workflow.source_path("../report/table.rst"),
    output:
        tex="results/{study}/tables/{dataset}.tex",
        csv="results/{study}/tables/{dataset}.csv",
        html=report(
            "results/{study}/tables/{dataset}.html",
            caption="../report/table.rst",
            category="{dataset}",
            subcategory="{study}",
            labels=report_labels("table"),
        ),
    params:
        decimals=REPORT["decimals"],
    log:
        "results/logs/{study}/table_{dataset}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/table.py"


rule thesis_comparison:
    """The thesis's numbers beside ours: only for a study the thesis has numbers for (its data
    sets under their `paper_name`, its regimes); any other study has no such item."""
    input:
        metrics="results/{study}/metrics.csv",
        paper=THESIS_NUMBERS,
        caption=workflow.source_path("../report/thesis_comparison.rst"),
    output:
        csv="results/{study}/comparisons/thesis.csv",
        tex="results/{study}/comparisons/thesis.tex",
        html=report(
            "results/{study}/comparisons/thesis.html",
            caption="../report/thesis_comparison.rst",
            category=ALL_DATASETS,
            subcategory="{study}",
            labels=report_labels("thesis"),
        ),
    params:
        paper_names=paper_names,
        decimals=REPORT["decimals"],
        confidence=REPORT["confidence"],
    log:
        "results/logs/{study}/thesis_comparison.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/thesis_comparison.py"


rule paired:
    """Paired comparisons on the same weights and seeds: DMBN against its rivals."""
    input:
        metrics="results/{study}/metrics.csv",
        caption=workflow.source_path("../report/paired.rst"),
    output:
        csv="results/{study}/comparisons/paired.csv",
        tex="results/{study}/comparisons/paired.tex",
        html=report(
            "results/{study}/comparisons/paired.html",
            caption="../report/paired.rst",
            category=ALL_DATASETS,
            subcategory="{study}",
            labels=report_labels("paired"),
        ),
    params:
        decimals=REPORT["decimals"],
        confidence=REPORT["confidence"],
    log:
        "results/logs/{study}/paired.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/paired.py"


rule study_page:
    """Every table and figure of a study on one page, laid out for a laptop: the report's item
    pane is too narrow for the thesis table and the three-panel figures."""
    input:
        parts=study_page_parts,
    output:
        page=report(
            "results/{study}/index.html",
            caption="../report/study_page.rst",
            category=ALL_DATASETS,
            subcategory="{study}",
            labels=report_labels("study_page"),
        ),
    log:
        "results/logs/{study}/study_page.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/study_page.py"


rule run_cards:
    """What produced each run of a study (versions, commit, device, threads, wall time): one row
    per run, as CSV and as HTML."""
    input:
        cards=lambda w: run_files(RUN_CARD, w.study),
        caption=workflow.source_path("../report/run_cards.rst"),
    output:
        csv="results/{study}/run_cards.csv",
        html=report(
            "results/{study}/run_cards.html",
            caption="../report/run_cards.rst",
            category=ALL_DATASETS,
            subcategory="{study}",
            labels=report_labels("run_cards"),
        ),
    params:
        runs=run_labels,
    log:
        "results/logs/{study}/run_cards.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/run_cards.py"


rule figures:
    """Figures 5.1-5.3 of the thesis and three more, for one data set and regime."""
    input:
        esm=figure_runs("esm.csv"),
        betas=figure_runs("betas.csv"),
        layers=figure_runs("layers.csv"),
        metrics="results/{study}/metrics.csv",
        captions=[workflow.source_path(f"../report/{name}.rst") for name in FIGURES],
    output:
        png=[f"results/{{study}}/figures/{{dataset}}/{{regime}}/{name}.png" for name in FIGURES],
        pdf=[f"results/{{study}}/figures/{{dataset}}/{{regime}}/{name}.pdf" for name in FIGURES],
        html=[
            report(
                f"results/{{study}}/figures/{{dataset}}/{{regime}}/{name}.html",
                caption=f"../report/{name}.rst",
                category="{dataset}",
                subcategory="{study}",
                labels=report_labels(name),
            )
            for name in FIGURES
        ],
    params:
        runs=figure_labels,
        beta_layer=lambda w: study_report_settings(w)["beta_layer"],
        esm_layers=lambda w: study_report_settings(w)["esm_layers"],
        dpi=REPORT["figure_dpi"],
    log:
        "results/logs/{study}/figures_{dataset}_{regime}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/figures.py"


rule run_figures:
    """Training curves and ESM per layer and epoch of one architecture's runs (seeds as a band)."""
    input:
        history=arch_run_files("history.csv"),
        esm=arch_run_files("esm.csv"),
        captions=[workflow.source_path(f"../report/{name}.rst") for name in RUN_FIGURES],
    output:
        png=[f"results/{{study}}/figures/{{dataset}}/{{regime}}/{{arch}}/{name}.png" for name in RUN_FIGURES],
        pdf=[f"results/{{study}}/figures/{{dataset}}/{{regime}}/{{arch}}/{name}.pdf" for name in RUN_FIGURES],
        html=[
            report(
                f"results/{{study}}/figures/{{dataset}}/{{regime}}/{{arch}}/{name}.html",
                caption=f"../report/{name}.rst",
                category="{dataset}",
                subcategory="{study}",
                labels=report_labels(name),
            )
            for name in RUN_FIGURES
        ],
    params:
        runs=arch_runs,
        estimator=lambda w: study_report_settings(w)["esm_estimator"],
        dpi=REPORT["figure_dpi"],
    log:
        "results/logs/{study}/figures_{dataset}_{regime}_{arch}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/run_figures.py"


rule batch_table:
    """Test metrics against batch size, one data set of a study with `batch_sizes`: mean and
    Student-t interval over seeds per estimator and batch size (CSV; LaTeX and HTML: accuracy)."""
    input:
        metrics="results/{study}/metrics.csv",
        caption=workflow.source_path("../report/batch_table.rst"),
    output:
        tex="results/{study}/tables/{dataset}_batch_sizes.tex",
        csv="results/{study}/tables/{dataset}_batch_sizes.csv",
        html=report(
            "results/{study}/tables/{dataset}_batch_sizes.html",
            caption="../report/batch_table.rst",
            category="{dataset}",
            subcategory="{study}",
            labels=report_labels("batch_table"),
        ),
    params:
        batch_sizes=batch_sizes,
        confidence=lambda w: study_report_settings(w)["confidence"],
        decimals=REPORT["decimals"],
    log:
        "results/logs/{study}/batch_table_{dataset}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/batch_table.py"


rule batch_figures:
    """Test accuracy, last-epoch ESM and β* against batch size, one data set of a study with
    `batch_sizes` (from the metrics table and the per-run summaries)."""
    input:
        metrics="results/{study}/metrics.csv",
        esm="results/{study}/summaries/esm_last_epoch.csv",
        betas="results/{study}/summaries/beta_star.csv",
        captions=[workflow.source_path(f"../report/{name}.rst") for name in BATCH_FIGURES],
    output:
        png=[f"results/{{study}}/figures/{{dataset}}/batch_sizes/{name}.png" for name in BATCH_FIGURES],
        pdf=[f"results/{{study}}/figures/{{dataset}}/batch_sizes/{name}.pdf" for name in BATCH_FIGURES],
        html=[
            report(
                f"results/{{study}}/figures/{{dataset}}/batch_sizes/{name}.html",
                caption=f"../report/{name}.rst",
                category="{dataset}",
                subcategory="{study}",
                labels=report_labels(name),
            )
            for name in BATCH_FIGURES
        ],
    params:
        batch_sizes=batch_sizes,
        beta_layer=lambda w: study_report_settings(w)["beta_layer"],
        esm_layers=lambda w: study_report_settings(w)["esm_layers"],
        confidence=lambda w: study_report_settings(w)["confidence"],
        dpi=REPORT["figure_dpi"],
    log:
        "results/logs/{study}/batch_figures_{dataset}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/batch_figures.py"
