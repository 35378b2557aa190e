"""Names shared by the library and the workflow (importable without torch).

Each name is written once here; schema enums, wildcard constraints, table order and labels are
derived from these registries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STATIC_BETAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
REFERENCE_BATCH_SIZE = 100  # the thesis's batch size: horizon-matched EMAs scale β from it


@dataclass(frozen=True)
class EstimatorKind:
    """One kind of estimator a bank run can carry (``dmbn.estimators`` holds the classes).

    ``stage`` says when its statistics are ready, and so which ESM pass measures them:
    ``epoch`` at every epoch's end (the first, stacked pass, with DMBN's candidates); ``chosen``
    after the candidates' ESM (a second pass each epoch: DMBN and its variants); ``final`` at the
    end of training (one pass); ``none``: no fixed statistics, no ESM (prediction-time BN).
    A ``per_beta`` kind contributes one row per β of ``train.betas``, named ``<kind>-<β>``.
    ``look``: its style in every figure (``Axes.plot`` keywords); a per-β kind gives a colour map
    (``cmap``, coloured by β) and a line style instead of a colour.
    """

    label: str            # readers' name (tables, figures); per-β kinds add the β
    cls: str              # class in dmbn.estimators
    stage: str
    default: bool         # on in ``train.estimators`` unless a study says otherwise
    rank: int             # table and legend order (BN-BFN sits at rank 25)
    per_beta: bool = False
    look: dict = field(default_factory=dict, compare=False)


# The registry. A bank holds its estimators by stage (STAGES), in this order within a stage: the
# order of a run's files. Adding an estimator: one line here, one class in dmbn.estimators (README,
# "The library").
ESTIMATORS = {
    "static": EstimatorKind("Static BN", "StaticEMA", "epoch", True, 10, per_beta=True,
                            look=dict(cmap="viridis", linestyle="-", linewidth=1.2)),
    "dmbn": EstimatorKind("DMBN", "DMBN", "chosen", True, 20,
                          look=dict(color="#d62728", linestyle="--", marker="*", linewidth=2.0)),
    "cma": EstimatorKind("Cumulative average", "CumulativeAverage", "epoch", True, 40,
                         look=dict(color="#8c564b", linestyle=":", marker="x")),
    "precise": EstimatorKind("PreciseBN", "PreciseBN", "final", True, 30,
                             look=dict(color="#9467bd", linestyle="-.", marker="P")),
    "recalibrated": EstimatorKind("Recalibrated (ESM = 0)", "Recalibrated", "final", True, 50,
                                  look=dict(color="#111111", linestyle=(0, (1, 1)), marker="d")),
    "horizon": EstimatorKind("Horizon-matched EMA", "HorizonEMA", "epoch", False, 11, per_beta=True,
                             look=dict(cmap="plasma", linestyle=(0, (3, 1)), marker=".", linewidth=1.0)),
    "moment": EstimatorKind("Moment EMA", "MomentEMA", "epoch", False, 12, per_beta=True,
                            look=dict(cmap="cividis", linestyle=(0, (1, 2)), marker=".", linewidth=1.0)),
    "dmbn-causal": EstimatorKind("DMBN, causal (β* of the previous epoch)", "CausalDMBN", "epoch",
                                 False, 21, look=dict(color="#e377c2", linestyle="--", marker="4", linewidth=1.6)),
    "dmbn-sigma": EstimatorKind("DMBN by ESM$_\\sigma$", "DMBNSigma", "chosen", False, 22,
                                look=dict(color="#17becf", linestyle="--", marker="1", linewidth=1.6)),
    "dmbn-mu-sigma": EstimatorKind("DMBN by ESM$_\\mu$ + ESM$_\\sigma$", "DMBNMuSigma", "chosen",
                                   False, 23, look=dict(color="#bcbd22", linestyle="--", marker="2", linewidth=1.6)),
    "test-batch": EstimatorKind("Prediction-time BN (test batch statistics)", "TestBatch", "none",
                                False, 60, look=dict(color="#2ca02c", linestyle=(0, (5, 2)), marker="H")),
}
STAGES = ("epoch", "chosen", "final", "none")  # when statistics are ready (EstimatorKind.stage)
ESTIMATOR_KINDS = tuple(ESTIMATORS)
DEFAULT_ESTIMATORS = tuple(k for k, v in ESTIMATORS.items() if v.default)
BN_BFN_RANK = 25  # the batch-free twin's row sits between the DMBNs and PreciseBN, as in the thesis
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


def beta_text(beta: float) -> str:
    """β as a path-safe decimal without trailing zeros: 0.3 -> ``0.3``, 1.0 -> ``1``, 0.001 ->
    ``0.001`` (never an exponent); ten decimals, so distinct βs of a config get distinct names
    (``dmbn.config.check`` refuses two that would not)."""
    return f"{beta:.10f}".rstrip("0").rstrip(".")


def static_name(beta: float, kind: str = "static") -> str:
    """The row name of a per-β estimator: ``static-0.3``, ``horizon-0.01``, ``moment-1``."""
    return f"{kind}-{beta_text(beta)}"


def estimator_kind(name: str) -> str:
    """The kind of a row name: ``static-0.3`` -> ``static``, ``dmbn-sigma`` -> ``dmbn-sigma``."""
    if name in ESTIMATORS:
        return name
    for kind, spec in ESTIMATORS.items():
        if spec.per_beta and name.startswith(f"{kind}-") and _is_number(name.removeprefix(f"{kind}-")):
            return kind
    raise KeyError(f"{name!r} is no estimator name (kinds: {', '.join(ESTIMATORS)})")


def is_estimator_name(name: str) -> bool:
    """Whether ``name`` is a row name of a registered kind (``estimator_kind`` knows it)."""
    try:
        estimator_kind(name)
    except KeyError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def estimator_label(name: str, latex: bool = True) -> str:
    """A row's name for readers: LaTeX (tables, matplotlib's mathtext) or plain text (HTML)."""
    kind = estimator_kind(name)
    text = ESTIMATORS[kind].label
    if ESTIMATORS[kind].per_beta:
        beta = name.removeprefix(f"{kind}-")
        text += f" ($\\beta = {beta}$)" if latex else f" (β = {beta})"
    if not latex:
        text = text.replace("$_\\sigma$", "_σ").replace("$_\\mu$", "_μ")
    return text


def estimator_rank(name: str) -> tuple[int, float]:
    """Sort key of a row: its kind's rank, then β."""
    kind = estimator_kind(name)
    beta = float(name.removeprefix(f"{kind}-")) if ESTIMATORS[kind].per_beta else 0.0
    return ESTIMATORS[kind].rank, beta


def estimator_name_pattern(stages: tuple[str, ...] = STAGES) -> str:
    """A regular expression matching the row names of every kind in ``stages`` (schema)."""
    parts = [k + (r"-[0-9.]+" if v.per_beta else "")
             for k, v in ESTIMATORS.items() if v.stage in stages]
    return "^(" + "|".join(parts) + ")$"


SEPARATE_MEMBER = r"static-[0-9.]+"  # the thesis's protocol: one run per static β (wildcard)


def run_estimators(kinds, betas, member: str = "bank") -> list[str]:
    """The estimator rows of one run: ``<kind>-<β>`` per β for a per-β kind, else the kind; a
    separate-protocol member (``static-β``) carries its own static estimator alone."""
    if member != "bank":
        return [member]
    betas, kinds = sorted(float(b) for b in betas), set(kinds)
    return [name for kind, spec in ESTIMATORS.items() if kind in kinds
            for name in ([static_name(b, kind) for b in betas] if spec.per_beta else [kind])]


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
