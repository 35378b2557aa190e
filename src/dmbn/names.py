"""Names shared by the library and the workflow (importable without torch).

Each name is written once here; schema enums, wildcard constraints, table order and labels are
derived from these registries.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable, Iterator

STATIC_BETAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
REFERENCE_BATCH_SIZE = 100  # the thesis's batch size: horizon-matched EMAs scale β from it
STAGES = ("epoch", "chosen", "final", "none")  # when statistics are ready (EstimatorKind.stage)
BUILT_IN_MODULE = "dmbn.estimators"  # where the built-in classes live (imported on first use)


@dataclass(frozen=True)
class EstimatorKind:
    """One kind of estimator a bank run can carry (``register_estimator`` adds one).

    ``stage`` says when its statistics are ready, and so which ESM pass measures them:
    ``epoch`` at every epoch's end (the first, stacked pass, with DMBN's candidates); ``chosen``
    after the candidates' ESM (a second pass each epoch: DMBN and its variants); ``final`` at the
    end of training (one pass); ``none``: no fixed statistics, no ESM (prediction-time BN).
    A ``per_beta`` kind contributes one row per β of ``train.betas``, named ``<kind>-<β>``.
    ``look``: its style in every figure (``Axes.plot`` keywords); a per-β kind gives a colour map
    (``cmap``, coloured by β) and a line style instead of a colour.
    ``cls``: the class itself (a user's registration), or ``"module:qualname"`` (the built-ins:
    imported on first use, so that this module, and ``dmbn.config`` with it, never imports torch);
    a bare class name means one in ``dmbn.estimators``.
    """

    label: str            # readers' name (tables, figures); per-β kinds add the β
    cls: str | type
    stage: str
    default: bool         # on in ``train.estimators`` unless a study says otherwise (built-ins)
    rank: int             # table and legend order (BN-BFN sits at rank 25)
    per_beta: bool = False
    look: dict = field(default_factory=dict, compare=False)

    def estimator_class(self) -> type:
        """The class: the registered object, or the built-in's, imported now."""
        if not isinstance(self.cls, str):
            return self.cls
        module, _, qualname = self.cls.rpartition(":")
        target = import_module(module or BUILT_IN_MODULE)
        for part in qualname.split("."):
            target = getattr(target, part)
        return target


# The registry, filled only by ``register_estimator`` (the built-ins below, then any user's). A
# bank holds its estimators by stage (STAGES), in this order within a stage: the order of a run's
# files. The schema's enum, the row-name patterns, the table order, labels and figure styles are
# all read from it when they are needed, so a kind registered later is picked up everywhere.
ESTIMATORS: dict[str, EstimatorKind] = {}
BN_BFN = "bn-bfn"  # the tables' variant: the batch-free twin with the default estimator, never a kind
_KIND_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")  # path-, CSV- and regex-safe
# Figure styles a registration without ``look`` draws from: the first colour and marker no
# registered kind uses (tab20's second shades and matplotlib markers the built-ins leave free).
_SPARE_COLORS = ("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
                 "#c7c7c7", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31", "#843c39")
_SPARE_MARKERS = ("o", "s", "^", "v", "D", "<", ">", "p", "h", "8", "+", "3")
_built_ins_done = False  # set once the built-ins are in: DEFAULT_ESTIMATORS is fixed from then on


def register_estimator(cls: type | str | None = None, /, *, kind: str | None = None,
                       label: str | None = None, stage: str = "epoch", rank: int | None = None,
                       per_beta: bool = False, look: dict | None = None, default: bool = False):
    """Register an estimator class under ``kind`` (default: the class's ``kind`` attribute), so that
    ``EstimatorBank(model, estimators=[..., kind])``, the config schema's ``train.estimators``, the
    row names, the tables' order and labels and the figures' styles all know it. Returns ``cls``;
    without ``cls``, a class decorator: ``@register_estimator(kind="mine", stage="epoch")``.

    Defaults: ``label`` the kind in words ("last-batch" -> "Last batch"); ``rank`` 10 past the
    highest registered (after every built-in, in registration order); ``look`` a colour and marker
    no registered kind uses, solid line. ``default=True`` is for the built-ins only (they make
    ``DEFAULT_ESTIMATORS``). A clash with a registered kind or row name, or an unknown ``stage``,
    is refused with a ``ValueError`` naming the kind; ``unregister_estimator`` undoes it.
    """
    if cls is None:
        return lambda decorated: register_estimator(decorated, kind=kind, label=label, stage=stage, rank=rank,
                                                    per_beta=per_beta, look=look, default=default)
    kind = _kind_of(cls, kind)
    _refuse_clash(kind, per_beta)
    if stage not in STAGES:
        raise ValueError(f"estimator {kind!r}: stage {stage!r} is not one of {', '.join(STAGES)} "
                         "(EstimatorKind says what each means)")
    if default and _built_ins_done:
        raise ValueError(f"estimator {kind!r}: default=True is for the built-ins (DEFAULT_ESTIMATORS is "
                         f"fixed when dmbn.names loads); list {kind!r} in train.estimators instead")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
        raise ValueError(f"estimator {kind!r}: rank {rank!r} is no integer (the table order)")
    if not isinstance(cls, str):
        cls.kind = kind  # Estimator reads its rows' names and stage through it
    ESTIMATORS[kind] = EstimatorKind(
        label or kind.replace("-", " ").capitalize(), cls, stage, default,
        max((k.rank for k in ESTIMATORS.values()), default=0) + 10 if rank is None else rank,
        per_beta, _default_look(per_beta) if look is None else dict(look))
    return cls


def _kind_of(cls: type | str, kind: str | None) -> str:
    """The name a class registers under: ``kind`` as given, or the class's own ``kind``; the two
    must agree, and a name must be lower-case words joined by hyphens."""
    if isinstance(cls, str):
        if not kind:
            raise ValueError(f"estimator class {cls!r} given by name: give its kind too")
    elif not isinstance(cls, type):
        raise TypeError(f"register_estimator takes a class (an Estimator subclass), not {cls!r}")
    own = "" if isinstance(cls, str) else getattr(cls, "kind", "")
    if kind and own and own != kind:
        raise ValueError(f"estimator {kind!r}: class {cls.__qualname__} says kind = {own!r}; give one name")
    kind = kind or own
    if not isinstance(kind, str) or _KIND_NAME.fullmatch(kind) is None:
        raise ValueError(f"estimator kind {kind!r} of {getattr(cls, '__qualname__', cls)}: a kind is lower-case "
                         "letters and digits in hyphen-joined words (e.g. 'last-batch')")
    return kind


def _refuse_clash(kind: str, per_beta: bool) -> None:
    """A kind may not reuse a registered kind, a row name (``static-0.5``) or BN-BFN's name, nor
    (per β) make row names that another kind already has."""
    if kind in ESTIMATORS:
        raise ValueError(f"estimator {kind!r} is already registered ({ESTIMATORS[kind].label}, class "
                         f"{_class_name(ESTIMATORS[kind].cls)}): choose another name, or unregister_estimator "
                         f"({kind!r}) first")
    if kind == BN_BFN or is_estimator_name(kind):
        row = "BN-BFN" if kind == BN_BFN else estimator_label(kind, latex=False)
        raise ValueError(f"estimator {kind!r} is already a row name ({row}): choose another name")
    if per_beta:
        taken = [k for k in ESTIMATORS if k.startswith(f"{kind}-") and _is_number(k.removeprefix(f"{kind}-"))]
        if taken:
            raise ValueError(f"estimator {kind!r} (per β) would name its rows like the kind {taken[0]!r}: "
                             "choose another name")


def _class_name(cls: str | type) -> str:
    return cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"


def _default_look(per_beta: bool) -> dict:
    """A style no registered kind has yet: a spare colour (per β: a colour map) and marker."""
    used = [k.look for k in ESTIMATORS.values()]
    if per_beta:
        cmaps = [m for m in ("magma", "cool", "winter", "copper") if m not in {u.get("cmap") for u in used}]
        return dict(cmap=(cmaps or ["magma"])[0], linestyle="-", marker=".", linewidth=1.0)
    colors = [c for c in _SPARE_COLORS if c not in {u.get("color") for u in used}] or list(_SPARE_COLORS)
    markers = [m for m in _SPARE_MARKERS if m not in {u.get("marker") for u in used}] or list(_SPARE_MARKERS)
    return dict(color=colors[0], linestyle="-", marker=markers[0])


def unregister_estimator(kind: str) -> EstimatorKind:
    """Undo a user's ``register_estimator`` (tests); the built-ins stay. Returns the entry."""
    if kind not in ESTIMATORS:
        raise KeyError(f"estimator {kind!r} is not registered (kinds: {', '.join(ESTIMATORS)})")
    if kind in _BUILT_IN_KINDS:
        raise ValueError(f"estimator {kind!r} is a built-in of dmbn: it cannot be unregistered")
    return ESTIMATORS.pop(kind)


@contextmanager
def registered_estimator(cls: type, /, **spec) -> Iterator[type]:
    """``register_estimator(cls, **spec)`` for the ``with`` block only (tests, notebooks)."""
    register_estimator(cls, **spec)
    kind = spec.get("kind") or cls.kind
    try:
        yield cls
    finally:
        unregister_estimator(kind)


BN_BFN_RANK = 25  # the batch-free twin's row sits between the DMBNs and PreciseBN, as in the thesis
DEFAULT_ESTIMATOR = "static-0.1"  # PyTorch's momentum; BN-BFN is reported with it, as in the thesis


# -- architectures ---------------------------------------------------------------------------------

def _mlp_bn_layers(train: dict) -> int:
    return train["depth"]


def _bnbfn_bn_layers(train: dict) -> int:
    return (train["depth"] + 1) // 2  # BN at hidden layers 1, 3, ...


def _resnet_bn_layers(train: dict) -> int:
    blocks = sum(train["resnet_blocks"])
    return 1 + 3 * blocks + len(train["resnet_blocks"])  # stem, 3 per bottleneck, one projection per stage


def _xbn_bn_layers(train: dict) -> int:
    return 2 * sum(train["resnet_blocks"]) + len(train["resnet_blocks"])  # GroupNorm at the stem and bn2


@dataclass(frozen=True)
class Architecture:
    """One network of the study. ``builder``: the function of ``dmbn.models`` that builds it (by
    name: this table stays torch-free); ``settings``: the ``train`` keys it reads (only these are
    part of its runs' identity, so a ResNet setting never reruns an MLP); ``bn_layers``: its
    BatchNorm layers' count from the ``train`` settings (the layers ESM is logged for, and that
    ``report.beta_layer`` / ``esm_layers`` may name); ``twin``: a BN network's batch-free hybrid
    (BN-BFN)."""

    builder: str
    settings: tuple[str, ...]
    bn_layers: Callable[[dict], int]
    twin: str | None = None


# The one table of architectures: the schema's enum, the `arch` wildcard, the BN/BN-BFN pairs,
# the layer checks and dmbn.models.build_model derive from it. A new network is one entry here,
# its builder in dmbn.models, and a test.
ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture("mlp_bn", ("depth", "width"), _mlp_bn_layers, twin="mlp-bnbfn"),
    "mlp-bnbfn": Architecture("mlp_bnbfn", ("depth", "width", "batch_free", "groups"), _bnbfn_bn_layers),
    "resnet50": Architecture("resnet50", ("resnet_blocks", "resnet_channels"), _resnet_bn_layers,
                             twin="resnet50-xbnblock-p2"),
    "resnet50-xbnblock-p2": Architecture("resnet50_xbnblock_p2", ("resnet_blocks", "resnet_channels", "xbn_groups"),
                                         _xbn_bn_layers),
}
ARCH_PATTERN = "|".join(re.escape(name) for name in sorted(ARCHITECTURES, key=len, reverse=True))
BATCH_NORM_ARCHS = {name: a.twin for name, a in ARCHITECTURES.items() if a.twin}  # BN arch -> BN-BFN twin
BATCH_FREE_ARCHS = {v: k for k, v in BATCH_NORM_ARCHS.items()}


RESNET50_CHANNELS = 64  # ResNet-50's stem channels: `train.resnet_channels` scales every layer by /64


def xbn_group_count(channels: int, groups_at_64: int) -> int | None:
    """XBNBlock-P2's GroupNorm groups at ``channels``: Huang et al.'s ``groups_at_64`` scaled with
    the width, so that every GroupNorm keeps their channels per group; None where that is no whole
    number of groups dividing the stem's ``channels`` (every other GroupNorm has a multiple)."""
    groups, rest = divmod(groups_at_64 * channels, RESNET50_CHANNELS)
    return None if rest or groups < 1 or channels % groups else groups


def batchnorm_count(arch: str, train: dict) -> int:
    """How many BN layers ``arch`` has under these ``train`` settings."""
    return ARCHITECTURES[arch].bn_layers(train)


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


@dataclass(frozen=True)
class Protocol:
    """How a study trains its networks: ``per_beta`` adds one training job (member ``static-β``)
    per static β beside the bank run; ``own_seed`` gives each of those its own seed
    (``training_seed``), so that each is a network of its own."""

    per_beta: bool
    own_seed: bool


PROTOCOLS = {
    "bank": Protocol(per_beta=False, own_seed=False),  # every estimator rides along on one trajectory
    # the thesis's one training per static β (BN's own momentum), each from the run's seed:
    # bitwise the bank's static-β row (DESIGN.md, section 2)
    "separate": Protocol(per_beta=True, own_seed=False),
    # the same, each from its own initialisation and data order: networks as different as two seeds
    "independent": Protocol(per_beta=True, own_seed=True),
}
SEED_STRIDE = 10_000  # independent members: seed · stride + 1,000 · β (β to three decimals)


def training_seed(seed: int, member: str, protocol: str) -> int:
    """The seed a run trains from. The bank, and every member of ``separate``, train from the
    study's seed; a member ``static-β`` of a protocol with ``own_seed`` from seed · 10,000 +
    1,000 · β, distinct for every (seed, β) with β in [0, 1] to three decimals (``dmbn.config``
    refuses finer βs); the train job's log shows it (``TrainConfig(seed=…)``)."""
    if member == "bank" or not PROTOCOLS[protocol].own_seed:
        return seed
    return seed * SEED_STRIDE + round(1000 * float(member.removeprefix("static-")))


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


# The built-ins, registered like any other (their classes: dmbn.estimators, imported on first use).
for _kind, _spec in {
    "static": dict(label="Static BN", cls="StaticEMA", stage="epoch", default=True, rank=10, per_beta=True,
                   look=dict(cmap="viridis", linestyle="-", linewidth=1.2)),
    "dmbn": dict(label="DMBN", cls="DMBN", stage="chosen", default=True, rank=20,
                 look=dict(color="#d62728", linestyle="--", marker="*", linewidth=2.0)),
    "cma": dict(label="Cumulative average", cls="CumulativeAverage", stage="epoch", default=True, rank=40,
                look=dict(color="#8c564b", linestyle=":", marker="x")),
    "precise": dict(label="PreciseBN", cls="PreciseBN", stage="final", default=True, rank=30,
                    look=dict(color="#9467bd", linestyle="-.", marker="P")),
    "recalibrated": dict(label="Recalibrated (ESM = 0)", cls="Recalibrated", stage="final", default=True, rank=50,
                         look=dict(color="#111111", linestyle=(0, (1, 1)), marker="d")),
    "horizon": dict(label="Horizon-matched EMA", cls="HorizonEMA", stage="epoch", rank=11, per_beta=True,
                    look=dict(cmap="plasma", linestyle=(0, (3, 1)), marker=".", linewidth=1.0)),
    "moment": dict(label="Moment EMA", cls="MomentEMA", stage="epoch", rank=12, per_beta=True,
                   look=dict(cmap="cividis", linestyle=(0, (1, 2)), marker=".", linewidth=1.0)),
    "dmbn-causal": dict(label="DMBN, causal (β* of the previous epoch)", cls="CausalDMBN", stage="epoch", rank=21,
                        look=dict(color="#e377c2", linestyle="--", marker="4", linewidth=1.6)),
    "dmbn-sigma": dict(label="DMBN by ESM$_\\sigma$", cls="DMBNSigma", stage="chosen", rank=22,
                       look=dict(color="#17becf", linestyle="--", marker="1", linewidth=1.6)),
    "dmbn-mu-sigma": dict(label="DMBN by ESM$_\\mu$ + ESM$_\\sigma$", cls="DMBNMuSigma", stage="chosen", rank=23,
                          look=dict(color="#bcbd22", linestyle="--", marker="2", linewidth=1.6)),
    "test-batch": dict(label="Prediction-time BN (test batch statistics)", cls="TestBatch", stage="none", rank=60,
                       look=dict(color="#2ca02c", linestyle=(0, (5, 2)), marker="H")),
    # rows that separate explanations of PreciseBN's small-batch recovery (issue 27)
    "static-biased": dict(label="Static BN, biased variance", cls="StaticBiasedEMA", stage="epoch", rank=13,
                          per_beta=True, look=dict(cmap="YlGn", linestyle=(0, (4, 1, 1, 1)), marker=".",
                                                   linewidth=1.0)),
    "precise-mean-unbiased": dict(label="PreciseBN, mean of unbiased batch variances (fvcore before 2021)",
                                  cls="PreciseMeanUnbiased", stage="final", rank=31,
                                  look=dict(color="#5254a3", linestyle="-.", marker="X")),
    "precise-mean-biased": dict(label="PreciseBN, mean of biased batch variances", cls="PreciseMeanBiased",
                                stage="final", rank=32, look=dict(color="#7b4173", linestyle="-.", marker="p")),
}.items():
    register_estimator(f"{BUILT_IN_MODULE}:{_spec.pop('cls')}", kind=_kind, **_spec)
_BUILT_IN_KINDS = frozenset(ESTIMATORS)
_built_ins_done = True
ESTIMATOR_KINDS = tuple(ESTIMATORS)  # the built-ins; ESTIMATORS itself also has a user's kinds
DEFAULT_ESTIMATORS = tuple(k for k, v in ESTIMATORS.items() if v.default)


# -- distribution shift: the rows scored with test batches or on the shifted set itself ------------

@dataclass(frozen=True)
class ShiftRule:
    """One row of the shift tables that is not a trained run's fixed statistics. ``cls``: its
    ``dmbn.test_time`` class by name (torch stays out of this module); None for the oracle, the
    statistics recalibrated on the whole shifted set (``dmbn.esm.recalibrated_statistics``).
    ``settings``: the ``shift`` keys it is built with (``prior`` is N of the source/target mix).
    ``streams``: whether its result depends on the order of the test stream (it uses test
    batches); the oracle sees the whole set at once."""

    label: str
    cls: str | None
    rank: int
    settings: tuple[str, ...] = ()
    streams: bool = True


# The one table of test-time rows: the schema's enum of `shift.rules`, the shift tables' order and
# labels derive from it. A new rule is its class in dmbn.test_time and one line here.
SHIFT_RULES: dict[str, ShiftRule] = {
    "test-batch": ShiftRule("Test batch (prediction-time BN)", "TestBatch", 110),
    "source-target-mix": ShiftRule("Source/target mix (Schneider et al.)", "SourceTargetMix", 120, ("prior",)),
    "robust-ema": ShiftRule("Robust EMA, α = 0.05 (RoTTA)", "RobustEMA", 130),
    "decaying-momentum": ShiftRule("Decaying momentum (DUA, no augmentation)", "DecayingMomentum", 140),
    "target-recalibrated": ShiftRule("Recalibrated on the shifted set (oracle)", None, 150, streams=False),
}
SHIFT_SOURCE, SHIFT_TEST_TIME = "source", "test-time"  # a shift row's family: fixed statistics, or not
ANY_STREAM = "any"  # the stream column of rows whose result does not depend on the test order


def shift_row_label(row: str, family: str) -> str:
    """A shift row's name for readers: a trained estimator's label, or a test-time rule's."""
    return SHIFT_RULES[row].label if family == SHIFT_TEST_TIME else estimator_label(row, latex=False)


def shift_row_rank(row: str, family: str) -> tuple[int, float]:
    """Sort key of a shift row: trained estimators first (their table order), then the rules."""
    return (SHIFT_RULES[row].rank, 0.0) if family == SHIFT_TEST_TIME else estimator_rank(row)
