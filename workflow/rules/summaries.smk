# Compact per-run summaries that `make publish` commits beside the tables.


rule summarise:
    """β* per layer and epoch, last-epoch ESM_μ per estimator and layer, last-epoch train loss
    and accuracy, every epoch's train loss, accuracy and ESM-set accuracy, of every run; and the
    spread of PreciseBN's batch means per layer, of the runs that wrote it."""
    input:
        betas=lambda w: run_files("betas.csv", w.study),
        esm=lambda w: run_files("esm.csv", w.study),
        history=lambda w: run_files("history.csv", w.study),
    output:
        beta_star="results/{study}/summaries/beta_star.csv",
        esm_last_epoch="results/{study}/summaries/esm_last_epoch.csv",
        training_last_epoch="results/{study}/summaries/training_last_epoch.csv",
        training_curves="results/{study}/summaries/training_curves.csv",
        precise_spread="results/{study}/summaries/precise_spread.csv",
    params:
        runs=run_labels,
        # written by the train jobs above only where the run has PreciseBN: read where present,
        # not declared (dmbn.train), so runs trained before it existed stay valid
        precise_spread=lambda w: run_files("precise_spread.csv", w.study),
    log:
        "results/logs/{study}/summarise.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/summarise.py"


rule separate_protocol:
    """A study with one training per static β (protocol separate or independent): each such
    network's accuracy beside the bank's static-β row of the same seed."""
    input:
        metrics=run_metrics,
    output:
        "results/{study}/comparisons/separate.csv",
    params:
        runs=run_labels,
    log:
        "results/logs/{study}/separate_protocol.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/separate_protocol.py"


rule rounding_noise:
    """A study that reruns another's seeds under a change that alters only float rounding (e.g.
    `threads`): per estimator, the same-seed differences beside the reference's seed spread."""
    input:
        perturbed="results/{study}/metrics.csv",
        reference=lambda w: f"results/{study(w)['rounding_of']}/metrics.csv",
    output:
        "results/{study}/comparisons/rounding.csv",
    params:
        confidence=REPORT["confidence"],
    log:
        "results/logs/{study}/rounding_noise.log",
    localrule: True
    conda:
        "../envs/dmbn.yaml"
    script:
        "../scripts/rounding_noise.py"
