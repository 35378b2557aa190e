# dmbn: BatchNorm's inference-time statistics — DMBN, ESM, static-momentum sweeps, BN-BFN.
#
#   snakemake --cores all             the default study (quickstart: offline, minutes)
#   snakemake --cores all mlp         Tables 5.1, 5.2 and Figures 5.1-5.3 (MNIST, FashionMNIST)
#   snakemake --profile profiles/slurm resnet    Tables 5.3, 5.4 on a SLURM cluster
#
# Data flow: download -> prepare (tensors) -> split -> train (one trajectory, every estimator)
#            -> evaluate (test metrics per estimator) -> aggregate -> tables, figures, report.

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

# The core library is src/dmbn: this checkout's, also without `pip install -e .`, and for the
# jobs' scripts too (they run in their own processes and inherit PYTHONPATH).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from dmbn.allocator import export_allocator_settings
from dmbn.config import expand_parts, export_source, validate
from dmbn.plugins import export_estimator_modules

export_source(Path(workflow.basedir) / "src")
# glibc's allocator keeps freed activations for the next pass: a CNN's eval forward ~1.5x cheaper
# (dmbn.allocator); exported here because the jobs, processes of their own, read it at start-up
export_allocator_settings()

min_version("8.0")


configfile: "config.yaml"


# A user's estimators (`estimator_modules`: module names or .py paths that call
# dmbn.register_estimator): imported before validation, whose enum of kinds reads the registry,
# and exported to every job's process (dmbn.plugins).
export_estimator_modules(config.get("estimator_modules", []))

# Before any job: the schema (the first line of an error names key and value), then
# dmbn.config.check (workflow/rules/common.smk).
validate(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
# A study with `parts: seed` becomes one study per seed (<name>_s<seed>), each a target of its own.
STUDY_PARTS = expand_parts(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/lock.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summaries.smk"
include: "workflow/rules/shift.smk"


report: "workflow/report/workflow.rst"


rule all:
    """The default study (config.yaml's `default_study`)."""
    input:
        study_targets(config["default_study"]),
    default_target: True
    localrule: True


# One target per study, named after it: `snakemake mlp`, `snakemake resnet`, ... A study named
# like one of the workflow's rules (`split`, `train`) would clash with it: refused, naming the key.
_rule_names = {rule.name for rule in workflow.rules}
for _study in [*config["studies"], *STUDY_PARTS]:
    if _study in _rule_names:
        raise WorkflowError(f"studies.{_study}: a study cannot be named like one of the workflow's rules "
                            f"({_study}); rename the study")

for _study in config["studies"]:

    rule:
        """Every table, figure and report item of the study this target is named after."""
        name:
            _study
        input:
            study_targets(_study),
        localrule: True


# A study published in parts: its name builds every part (`snakemake cnn_b16`), each in its own folder.
for _study, _parts in STUDY_PARTS.items():

    rule:
        """Every part of the study this target is named after, a seed each."""
        name:
            _study
        input:
            [target for part in _parts for target in study_targets(part)],
        localrule: True
