"""Names shared by the library and the workflow (importable without torch).

Each name is written once here; schema enums, wildcard constraints, table order and labels are
derived from these registries.
"""

from __future__ import annotations

import re

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

# The batch-size axis: ``mini-b<B>`` trains mini-batches of B samples of the 80 % split (ESM set
# and test set as ``mini``, whose batch size is the study's ``train.batch_size``). A study's
# ``batch_sizes`` lists points of the axis; ``full`` is one batch of the whole 80 % split, the
# regime ``full-heldout``.
MINI_BATCH_FAMILY = "mini-b"
FULL_BATCH = "full"  # the batch_sizes entry for one batch of every training sample
AXIS_FULL_BATCH_REGIME = "full-heldout"
_FAMILY_PATTERN = rf"{MINI_BATCH_FAMILY}[1-9][0-9]*"
# Every regime name (no groups: Snakemake wraps it in its own): wildcard constraint and schema.
REGIME_PATTERN = "|".join([*REGIMES, _FAMILY_PATTERN])  # names are [a-z-]: no escaping

RUN_CARD = "card.json"  # what produced a run: versions, commit, device, threads, times


def static_name(beta: float) -> str:
    """The name of the static EMA estimator with momentum ``beta``: ``static-0.3``."""
    return f"static-{beta:g}"


def primary_arch(archs) -> str:
    """The network whose estimators the figures show: the first BN (not BN-BFN) architecture."""
    archs = list(dict.fromkeys(archs))
    return next((a for a in archs if a in BATCH_NORM_ARCHS), archs[0])


def axis_regime(point: int | str) -> str:
    """The regime of one point of a study's ``batch_sizes``: ``mini-b<B>``, or ``full-heldout``
    for ``full`` (it trains on the same 80 % split)."""
    return AXIS_FULL_BATCH_REGIME if point == FULL_BATCH else f"{MINI_BATCH_FAMILY}{point}"


def family_batch_size(regime: str) -> int | None:
    """B of a ``mini-b<B>`` regime; None for the named regimes (``mini`` takes the study's)."""
    if re.fullmatch(_FAMILY_PATTERN, regime) is None:
        return None
    return int(regime.removeprefix(MINI_BATCH_FAMILY))


def is_regime(name: str) -> bool:
    return re.fullmatch(REGIME_PATTERN, name) is not None


def regime_label(regime: str) -> str:
    batch_size = family_batch_size(regime)
    return REGIMES[regime][0] if batch_size is None else f"Mini-batch, B = {batch_size}"


def regime_rank(regime: str) -> tuple[int, int]:
    """Table order: the named regimes in ``REGIMES`` order (full batch first, as the thesis),
    then the batch-size axis from the largest batch down, as full batch comes first."""
    batch_size = family_batch_size(regime)
    return (list(REGIMES).index(regime), 0) if batch_size is None else (len(REGIMES), -batch_size)

METRICS = ("accuracy", "sensitivity", "specificity", "f1")  # the thesis's test-set metrics
