# Per study: the long metrics table, thesis-layout tables, comparisons and figures.


rule aggregate:
    input:
        run_metrics,
    output:
        report(
            "results/{study}/metrics.csv",
            caption="../report/metrics.rst",
            category="{study}",
            subcategory="Metrics",
        ),
    params:
        runs=run_labels,
    log:
        "results/logs/{study}/aggregate.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/aggregate.py"


rule table:
    """One table per data set in the thesis's layout (LaTeX, booktabs) and its CSV twin."""
    input:
        "results/{study}/metrics.csv",
    output:
        tex="results/{study}/tables/{dataset}.tex",
        csv=report(
            "results/{study}/tables/{dataset}.csv",
            caption="../report/table.rst",
            category="{study}",
            subcategory="Tables",
        ),
    params:
        decimals=config["report"].get("decimals", 3),
    log:
        "results/logs/{study}/table_{dataset}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/table.py"


rule compare:
    """The thesis's numbers beside ours, and paired comparisons on the same weights and seeds."""
    input:
        metrics="results/{study}/metrics.csv",
        paper=workflow.source_path("../resources/paper_tables.csv"),
    output:
        thesis=report(
            "results/{study}/comparisons/thesis.csv",
            caption="../report/thesis_comparison.rst",
            category="{study}",
            subcategory="Comparisons",
        ),
        thesis_tex="results/{study}/comparisons/thesis.tex",
        paired=report(
            "results/{study}/comparisons/paired.csv",
            caption="../report/paired.rst",
            category="{study}",
            subcategory="Comparisons",
        ),
        paired_tex="results/{study}/comparisons/paired.tex",
    params:
        paper_names={k: v.get("paper_name", k) for k, v in config["datasets"].items()},
        decimals=config["report"].get("decimals", 3),
        confidence=config["report"].get("confidence", 0.95),
    log:
        "results/logs/{study}/compare.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/compare.py"


rule figures:
    """Figures 5.1-5.3 of the thesis and three more, for one data set and regime."""
    input:
        esm=figure_runs("esm.csv"),
        betas=figure_runs("betas.csv"),
        layers=figure_runs("layers.csv"),
        metrics="results/{study}/metrics.csv",
    output:
        png=[
            report(
                f"results/{{study}}/figures/{{dataset}}/{{regime}}/{name}.png",
                caption=f"../report/{name}.rst",
                category="{study}",
                subcategory="Figures: {dataset}, {regime}",
            )
            for name in FIGURES
        ],
        pdf=[f"results/{{study}}/figures/{{dataset}}/{{regime}}/{name}.pdf" for name in FIGURES],
    params:
        runs=figure_labels,
        beta_layer=config["report"].get("beta_layer", 18),
        esm_layers=config["report"].get("esm_layers", [2, 19]),
        dpi=config["report"].get("figure_dpi", 150),
    log:
        "results/logs/{study}/figures_{dataset}_{regime}.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/figures.py"
