"""Names shared by the library and the workflow (importable without torch).

Each name is written once here; schema enums, wildcard constraints, table order and labels are
derived from these registries.
"""

from __future__ import annotations

STATIC_BETAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ESTIMATOR_KINDS = ("static", "dmbn", "cma", "precise", "recalibrated")  # what a bank run can carry
DEFAULT_ESTIMATOR = "static-0.1"  # PyTorch's momentum; BN-BFN is reported with it, as in the thesis
BATCH_NORM_ARCHS = {"mlp": "mlp-bnbfn", "resnet50": "resnet50-xbnblock-p2"}  # BN arch -> BN-BFN twin
BATCH_FREE_ARCHS = {v: k for k, v in BATCH_NORM_ARCHS.items()}

# Regime -> (label, what it trains, tunes and tests on), in table order (the thesis puts full
# batch first). ``full`` is the thesis's full batch: it trains, picks β*, recalibrates and tests on
# the official test set, so its accuracies are eval-mode accuracies on the training data.
REGIMES = {
    "full": ("Full batch (thesis: train = ESM set = test set)",
             "full batch on the official test set; ESM set and test set are that same set"),
    "full-heldout": ("Full batch, held out",
                     "full batch on the 80 % split; ESM set the 20 % split; official test set"),
    "mini": ("Mini-batch",
             "mini-batches of the 80 % split; ESM set the 20 % split; official test set"),
}
FULL_BATCH_REGIMES = ("full", "full-heldout")

RUN_CARD = "card.json"  # what produced a run: versions, commit, device, threads, times


def static_name(beta: float) -> str:
    """The name of the static EMA estimator with momentum ``beta``: ``static-0.3``."""
    return f"static-{beta:g}"


def primary_arch(archs) -> str:
    """The network whose estimators the figures show: the first BN (not BN-BFN) architecture."""
    archs = list(dict.fromkeys(archs))
    return next((a for a in archs if a in BATCH_NORM_ARCHS), archs[0])


def regime_label(regime: str) -> str:
    return REGIMES[regime][0]

METRICS = ("accuracy", "sensitivity", "specificity", "f1")  # the thesis's test-set metrics
