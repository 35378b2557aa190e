"""Running-statistics estimators of BatchNorm as plug-ins, and the holders that carry them.

In train mode BN normalises with batch statistics and only *writes* its running estimates, so the
momentum β never changes the weights. One run can therefore carry every estimator. Each kind is
one small class behind the ``Estimator`` interface (in the style of fvcore's ``precise_bn``), listed
in the registry ``dmbn.names.ESTIMATORS``; ``docs/ESTIMATORS.md`` states each one's definition and
cost. Notation: per channel, batch b of n values has mean m_b and unbiased variance v_b.

* ``static-β``     PyTorch's EMA with momentum β: μ ← (1−β)μ + β m_b, σ² ← (1−β)σ² + β v_b
* ``cma``          cumulative average (PyTorch's ``momentum=None``): β_t = 1/t
* ``horizon-β``    the static EMA at per-step momentum 1 − (1−β)^κ, κ = batch size / reference
                   batch size: the same horizon in samples whatever the batch size
* ``moment-β``     EMAs of E[x] and E[x²], σ² = (E[x²] − E[x]²) / (1 − β/((2−β)n))
* ``dmbn``         Dynamic Momentum BN: per layer and epoch, the β* whose static EMA has the
                   smallest ESM_μ at that epoch's end drives this layer's EMA over that epoch
* ``dmbn-sigma``, ``dmbn-mu-sigma``: the same, choosing by ESM_σ, or by ESM_μ + ESM_σ
* ``dmbn-causal``  a real per-layer EMA whose β during epoch e is epoch e−1's β* (0.1 first)
* ``precise``      PreciseBN: population statistics of the final weights (fvcore's ``update_bn_stats``)
* ``recalibrated`` expected statistics measured layer by layer on the ESM set (ESM = 0)
* ``test-batch``   prediction-time BN: no statistics; each test batch is normalised with its own

A holder carries the estimators of one run behind one interface (``StatisticsHolder``): the
``EstimatorBank``, or ``OwnMomentum`` (the thesis's protocol: BN's own buffers at momentum β).

How batch statistics are observed at no cost: every BN layer's buffers become views into one flat
vector and its momentum is set to 1.0, so after each training forward that vector holds exactly
the last batch's mean and unbiased variance for all layers. All plain EMA rows (static, CMA,
horizon-matched) live in one ``[rows, channels]`` tensor that one ``lerp_`` updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import torch
from torch import Tensor, nn

from .names import ESTIMATORS, REFERENCE_BATCH_SIZE, STATIC_BETAS, static_name
from .statistics import (EstimatorStatistics, LayerLayout, batchnorm_layers, preserved_statistics,
                         read_buffers, using_statistics)

Statistics = tuple[Tensor, Tensor]  # flat (mean, var) over every BN channel
FIRST_EPOCH_BETA = 0.1  # causal DMBN's momentum before any β* exists: PyTorch's default


# -- what estimators see ---------------------------------------------------------------------------

@dataclass
class Batch:
    """One training forward's statistics, flat over every BN channel."""

    mean: Tensor          # batch mean
    var: Tensor           # unbiased batch variance (what BN writes at momentum 1)
    count: Tensor | None  # values per channel (samples x positions); only if an estimator asks


@dataclass
class Setup:
    """What an estimator is built from: the model's layout and device, and the run's settings."""

    layout: LayerLayout
    device: torch.device
    betas: tuple[float, ...]        # the static candidates (sorted)
    kappa: float = 1.0              # batch size / reference batch size (horizon-matched EMAs)
    prediction_batch: int | None = None  # test-batch: samples per test batch (None: all at once)


@dataclass
class EpochContext:
    """The end of an epoch, for estimators that choose β*: the static candidates' ESM (``[candidates,
    layers]``), their EMA states at the epoch's start and end (``[candidates, channels]``) and the
    number of steps in between."""

    betas: tuple[float, ...]
    esm_mu: Tensor
    esm_sigma: Tensor | None
    start: Statistics
    end: Statistics
    steps: int


@dataclass
class TrainingContext:
    """The end of training, for estimators of the final weights."""

    model: nn.Module
    training_batches: Callable[[], Iterable[Tensor]]  # PreciseBN's batches of training inputs
    x_esm: Tensor
    esm_chunk: int


# -- the interface ---------------------------------------------------------------------------------

class Estimator:
    """One kind of running-statistics estimator (``dmbn.names.ESTIMATORS`` lists them).

    A holder calls ``start_epoch()`` before each epoch, ``observe(batch)`` after every training
    forward, ``finish_epoch(context)`` at each epoch's end (after the ESM pass of the ``epoch``
    stage) and ``finish_training(context)`` once at the end. ``statistics()`` gives the rows it
    holds now ({} before they exist); ``names`` every row it contributes.
    """

    kind = ""
    needs_count = False  # observe() needs Batch.count (a forward hook per BN layer)

    def __init__(self, setup: Setup) -> None:
        self.layout, self.device = setup.layout, setup.device
        self.names = [self.kind]

    @property
    def stage(self) -> str:
        return ESTIMATORS[self.kind].stage

    def start_epoch(self) -> None:
        pass

    def observe(self, batch: Batch) -> None:
        pass

    def finish_epoch(self, context: EpochContext | None) -> None:
        pass

    def finish_training(self, context: TrainingContext) -> None:
        pass

    def reopen(self) -> None:
        """A finished run goes on for more epochs: drop statistics of the old final weights."""

    def statistics(self) -> dict[str, Statistics]:
        raise NotImplementedError

    def prediction_batches(self) -> dict[str, int | None]:
        """Rows evaluated with each test batch's own statistics: name -> samples per batch."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def _zeros_ones(self, *rows: int) -> Statistics:
        """The start state BN gives its buffers: mean 0, variance 1."""
        shape = (*rows, self.layout.channels)
        return torch.zeros(shape, device=self.device), torch.ones(shape, device=self.device)


class EmaRows(Estimator):
    """Rows of plain EMAs, μ ← μ + w (m_b − μ) and σ² ← σ² + w (v_b − σ²), one momentum w per
    row. The holder stacks every ``EmaRows`` estimator's rows into one tensor and advances them all
    with one ``lerp_`` after each ``observe``; ``momenta()`` gives this one's initial w (a row may
    change its own w in ``observe``, through the view ``self.weights``)."""

    def momenta(self) -> list[float]:
        raise NotImplementedError

    def bind(self, mean: Tensor, var: Tensor, weights: Tensor) -> None:
        self.mean, self.var, self.weights = mean, var, weights

    def statistics(self) -> dict[str, Statistics]:
        return {name: (self.mean[i], self.var[i]) for i, name in enumerate(self.names)}


# -- the EMAs --------------------------------------------------------------------------------------

class StaticEMA(EmaRows):
    """PyTorch's running statistics at momentum β, one row per β:
    μ ← (1−β) μ + β m_b,  σ² ← (1−β) σ² + β v_b  (v_b unbiased, as PyTorch keeps it)."""

    kind = "static"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.betas = setup.betas
        self.names = [static_name(b) for b in self.betas]

    def momenta(self) -> list[float]:
        return list(self.betas)


class CumulativeAverage(EmaRows):
    """PyTorch's ``momentum=None``: the plain mean of every batch's statistics, β_t = 1/t."""

    kind = "cma"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.steps = 0

    def momenta(self) -> list[float]:
        return [1.0]

    def observe(self, batch: Batch) -> None:
        self.steps += 1
        self.weights.fill_(1.0 / self.steps)

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.weights.fill_(1.0 / max(self.steps, 1))


class HorizonEMA(EmaRows):
    """The static EMA with its horizon matched in samples rather than steps ("How to Scale Your
    EMA", Busbridge et al. 2023): per-step momentum 1 − (1−β)^κ, κ = batch size / reference batch
    size (``train.reference_batch_size``, 100 = the thesis's; full batch: κ = n_train / 100).
    After κ reference batches' worth of samples the start state weighs (1−β)^κ per step, as a
    β-EMA's does after one reference batch."""

    kind = "horizon"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.betas, self.kappa = setup.betas, setup.kappa
        self.names = [static_name(b, self.kind) for b in self.betas]

    def momenta(self) -> list[float]:
        return [1.0 - (1.0 - b) ** self.kappa for b in self.betas]


class MomentEMA(Estimator):
    """EMAs of the first and second moments (Summers & Dinneen 2020), one row per β, in float64
    (E[x²] − E[x]² cancels): a ← (1−β) a + β m_b, s ← (1−β) s + β (v_b (n−1)/n + m_b²), and

        σ² = (s − a²) / (1 − β / ((2−β) n)).

    s − a² is the EMA-weighted *population* variance of all samples seen, the spread of the batch
    means included. The divisor is the reliability-weights Bessel correction of an EMA at steady
    state (each sample weighs w_b/n, Σ_b w_b² = β/(2−β)), so the estimate is unbiased for i.i.d.
    batches like PyTorch's ``running_var``; at β = 1 it is exactly the last batch's unbiased
    variance (n/(n−1)). n is the last batch's count per channel (fixed during training, but for a
    smaller last batch)."""

    kind = "moment"
    needs_count = True

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.betas = setup.betas
        self.names = [static_name(b, self.kind) for b in self.betas]
        rows, channels = len(self.betas), self.layout.channels
        self.beta = torch.tensor(self.betas, dtype=torch.float64, device=self.device).unsqueeze(1)
        self.mean = torch.zeros(rows, channels, dtype=torch.float64, device=self.device)
        self.square = torch.ones(rows, channels, dtype=torch.float64, device=self.device)
        self.count = torch.full((channels,), 2.0, dtype=torch.float64, device=self.device)
        self._biased = (self.count - 1) / self.count

    def observe(self, batch: Batch) -> None:
        if batch.count is not self.count:  # a new batch size: the biased-variance factor changes
            self.count, self._biased = batch.count, (batch.count - 1) / batch.count
        mean = batch.mean.double()
        square = torch.addcmul(mean.square(), batch.var.double(), self._biased)
        self.mean.lerp_(mean.expand_as(self.mean), self.beta)
        self.square.lerp_(square.expand_as(self.square), self.beta)

    def statistics(self) -> dict[str, Statistics]:
        bessel = 1.0 - self.beta / ((2.0 - self.beta) * self.count)
        var = ((self.square - self.mean.square()) / bessel).clamp_min(0.0)
        dtype = torch.float32
        return {name: (self.mean[i].to(dtype), var[i].to(dtype)) for i, name in enumerate(self.names)}

    def state_dict(self) -> dict:
        return {"mean": self.mean, "square": self.square, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean.copy_(state["mean"])
        self.square.copy_(state["square"])
        self.count = state["count"].to(self.device)
        self._biased = (self.count - 1) / self.count


# -- DMBN and its variants -------------------------------------------------------------------------

class DMBN(Estimator):
    """Dynamic Momentum BN: at each epoch's end, per layer l, β*ₗ = argmin over the static
    candidates of ESM_μ (ties: the smaller β); that layer's EMA runs over the epoch with β*ₗ.

    No replay: the EMA is linear in its start state, so after n steps with β*
        DMBN_end = candidate_end + (1−β*)ⁿ · (DMBN_start − candidate_start).
    """

    kind = "dmbn"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        if not setup.betas:
            raise ValueError("DMBN chooses among static candidates: give at least one β")
        self.mean, self.var = self._zeros_ones()
        self.beta_star: Tensor | None = None  # per layer, from the last finished epoch

    def score(self, context: EpochContext) -> Tensor:
        """What β* minimises, ``[candidates, layers]``."""
        return context.esm_mu

    def finish_epoch(self, context: EpochContext | None) -> None:
        choice = self.score(context).to(self.device).argmin(dim=0)  # [layers]
        betas = torch.tensor(context.betas, dtype=torch.float64, device=self.device)
        self.beta_star = betas[choice]
        row = self.layout.per_channel(choice)
        channel = torch.arange(self.layout.channels, device=self.device)
        decay = ((1.0 - self.layout.per_channel(self.beta_star)) ** context.steps).to(self.mean.dtype)
        (start_mean, start_var), (end_mean, end_var) = context.start, context.end
        self.mean = end_mean[row, channel] + decay * (self.mean - start_mean[row, channel])
        self.var = end_var[row, channel] + decay * (self.var - start_var[row, channel])

    def statistics(self) -> dict[str, Statistics]:
        return {self.kind: (self.mean, self.var)}

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "beta_star": self.beta_star}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var = state["mean"].to(self.device), state["var"].to(self.device)
        self.beta_star = state["beta_star"]


class DMBNSigma(DMBN):
    """DMBN choosing β* by ESM_σ (the variance's shift) instead of ESM_μ."""

    kind = "dmbn-sigma"

    def score(self, context: EpochContext) -> Tensor:
        if context.esm_sigma is None:
            raise ValueError(f"{self.kind} chooses by ESM_σ: finish_epoch() needs the candidates' esm_sigma")
        return context.esm_sigma


class DMBNMuSigma(DMBNSigma):
    """DMBN choosing β* by ESM_μ + ESM_σ (both shifts, in the units of the layer's input)."""

    kind = "dmbn-mu-sigma"

    def score(self, context: EpochContext) -> Tensor:
        return context.esm_mu + super().score(context)


class CausalDMBN(Estimator):
    """DMBN that a real training could run: during epoch e each layer's EMA uses epoch e−1's
    β* (argmin of the candidates' ESM_μ, as ``dmbn``), epoch 1 uses β = 0.1. No look-back: the
    statistics at epoch e's end exist before epoch e's ESM is measured."""

    kind = "dmbn-causal"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        if not setup.betas:
            raise ValueError("DMBN chooses among static candidates: give at least one β")
        self.mean, self.var = self._zeros_ones()
        self.beta = torch.full((len(self.layout.sizes),), FIRST_EPOCH_BETA, dtype=torch.float64,
                               device=self.device)  # per layer, for the coming epoch
        self._weights = self.layout.per_channel(self.beta).float()

    def observe(self, batch: Batch) -> None:
        self.mean.lerp_(batch.mean, self._weights)
        self.var.lerp_(batch.var, self._weights)

    def finish_epoch(self, context: EpochContext | None) -> None:
        betas = torch.tensor(context.betas, dtype=torch.float64, device=self.device)
        self.beta = betas[context.esm_mu.to(self.device).argmin(dim=0)]
        self._weights = self.layout.per_channel(self.beta).float()

    def statistics(self) -> dict[str, Statistics]:
        return {self.kind: (self.mean, self.var)}

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        self.mean.copy_(state["mean"])
        self.var.copy_(state["var"])
        self.beta = state["beta"].to(self.device)
        self._weights = self.layout.per_channel(self.beta).float()


# -- estimators of the final weights ---------------------------------------------------------------

class FinalEstimator(Estimator):
    """Statistics measured once, on the final weights; ``measure`` says how."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.value: Statistics | None = None

    def measure(self, context: TrainingContext) -> Statistics:
        raise NotImplementedError

    def finish_training(self, context: TrainingContext) -> None:
        self.value = self.measure(context)

    def reopen(self) -> None:
        self.value = None

    def statistics(self) -> dict[str, Statistics]:
        return {} if self.value is None else {self.kind: self.value}

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


class PreciseBN(FinalEstimator):
    """PreciseBN (Wu & Johnson 2021; fvcore's ``update_bn_stats``): the population mean and
    unbiased variance of every BN layer's input over ``train.precise_batches`` training batches
    with the final weights (``precise_statistics``)."""

    kind = "precise"

    def measure(self, context: TrainingContext) -> Statistics:
        return precise_statistics(context.model, context.training_batches())


class Recalibrated(FinalEstimator):
    """The expected statistics on the ESM set, set layer by layer with every upstream layer already
    recalibrated (``dmbn.esm.recalibrated_statistics``): ESM = 0 by construction."""

    kind = "recalibrated"

    def measure(self, context: TrainingContext) -> Statistics:
        from .esm import recalibrated_statistics

        return recalibrated_statistics(context.model, context.x_esm, context.esm_chunk)


class TestBatch(Estimator):
    """Prediction-time BN (Nado et al. 2020): no running statistics at all; each test batch of the
    run's batch size (full batch: the whole test set) is normalised with its own statistics
    (``dmbn.evaluate.predict_with_batch_statistics``). Its ESM is 0 by definition and is not
    logged: it has no row in ``esm.csv`` nor an ESM-set accuracy in ``history.csv``."""

    kind = "test-batch"
    __test__ = False  # not a pytest class

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.batch_size = setup.prediction_batch

    def statistics(self) -> dict[str, Statistics]:
        return {}

    def prediction_batches(self) -> dict[str, int | None]:
        return {self.kind: self.batch_size}


def estimator_class(kind: str) -> type[Estimator]:
    """The class of an estimator kind, from the registry."""
    if kind not in ESTIMATORS:
        raise KeyError(f"unknown estimator kind {kind!r} (kinds: {', '.join(ESTIMATORS)})")
    return globals()[ESTIMATORS[kind].cls]


# -- holders ---------------------------------------------------------------------------------------

class StatisticsHolder(Protocol):
    """What a training run drives: the ``EstimatorBank`` or ``OwnMomentum``."""

    candidates: list[str]
    beta_star: Tensor | None

    def start_epoch(self) -> None: ...
    def observe(self) -> None: ...
    def finish_epoch(self, esm_mu: Tensor, esm_sigma: Tensor | None = None) -> Tensor | None: ...
    def finish_training(self, context: TrainingContext) -> None: ...
    def stage_statistics(self, stage: str) -> dict[str, Statistics]: ...
    def reopen(self) -> list[str]: ...
    def export(self) -> EstimatorStatistics: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class EstimatorBank:
    """Running-statistics estimators of every BN layer of ``model``, fed by its training forwards.

    ``estimators`` are kinds of ``dmbn.names.ESTIMATORS``. Call ``start_epoch()`` before an epoch,
    ``observe()`` after every training forward, ``finish_epoch(esm_mu, esm_sigma)`` at the epoch's
    end with the static candidates' ESM per layer (from ``dmbn.esm``), and, for the estimators of
    the final weights, ``finish_training(context)``.
    """

    def __init__(self, model: nn.Module, betas: Iterable[float] = STATIC_BETAS,
                 estimators: Iterable[str] = ("static", "dmbn", "cma"), kappa: float = 1.0,
                 prediction_batch: int | None = None) -> None:
        self.model = model
        self.layout = LayerLayout.of(model)
        if not self.layout.sizes:
            raise ValueError("the model has no BatchNorm layer to estimate statistics for")
        self.betas = tuple(sorted(float(b) for b in betas))
        self._batch_mean, self._batch_var = self._pool_buffers()
        setup = Setup(self.layout, self._batch_mean.device, self.betas, kappa, prediction_batch)
        kinds = set(estimators)
        self.estimators = [estimator_class(k)(setup) for k in ESTIMATORS if k in kinds]
        unknown = kinds - set(ESTIMATORS)
        if unknown:
            raise KeyError(f"unknown estimator kinds {sorted(unknown)} (kinds: {', '.join(ESTIMATORS)})")
        self._bind_ema_rows()
        choosers = [e.kind for e in self.estimators if isinstance(e, (DMBN, CausalDMBN))]
        if choosers and self._static is None:
            raise ValueError(f"{', '.join(choosers)} choose among the static candidates: add 'static' "
                             "to the estimators")
        self._observers = [e for e in self.estimators if type(e).observe is not Estimator.observe]
        self._counts = self._count_hooks() if any(e.needs_count for e in self.estimators) else None
        self._last_counts: tuple[int, ...] = ()
        self._count: Tensor | None = None
        self.epoch_steps = 0
        self._epoch_start: Statistics | tuple | None = None  # the candidates' state at the start

    def _pool_buffers(self) -> Statistics:
        """Make every BN buffer a view into one flat vector and have BN write raw batch stats there."""
        layers = [bn for _, bn in batchnorm_layers(self.model)]
        flat_mean = torch.cat([bn.running_mean.detach() for bn in layers])
        flat_var = torch.cat([bn.running_var.detach() for bn in layers])
        for bn, m, v in zip(layers, self.layout.split(flat_mean), self.layout.split(flat_var)):
            bn.running_mean, bn.running_var = m, v
            bn.momentum = 1.0
        return flat_mean, flat_var

    def _bind_ema_rows(self) -> None:
        """Every ``EmaRows`` estimator's rows as slices of one ``[rows, channels]`` pair."""
        rows = [e for e in self.estimators if isinstance(e, EmaRows)]
        momenta = [w for e in rows for w in e.momenta()]
        device, channels = self._batch_mean.device, self.layout.channels
        self._weights = torch.tensor(momenta, device=device).unsqueeze(1)
        self.ema_mean = torch.zeros(len(momenta), channels, device=device)
        self.ema_var = torch.ones(len(momenta), channels, device=device)
        first = 0
        for e in rows:
            part = slice(first, first + len(e.names))
            e.bind(self.ema_mean[part], self.ema_var[part], self._weights[part])
            first = part.stop
        self._static = next((e for e in rows if isinstance(e, StaticEMA)), None)

    def _count_hooks(self) -> list[int]:
        """Values per channel of each BN layer's last input (forward pre-hooks)."""
        counts = [0] * len(self.layout.sizes)
        for i, (_, bn) in enumerate(batchnorm_layers(self.model)):
            bn.register_forward_pre_hook(_count_into(counts, i))
        return counts

    def _count_per_channel(self) -> Tensor | None:
        """Values per channel of the last batch (only if an estimator asks); rebuilt only when the
        batch size changed, so a step usually reuses the same tensor."""
        if self._counts is None:
            return None
        if tuple(self._counts) != self._last_counts:
            self._last_counts = tuple(self._counts)
            self._count = self.layout.per_channel(torch.tensor(self._last_counts, dtype=torch.float64,
                                                               device=self._batch_mean.device))
        return self._count

    # -- names -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Every estimator this bank currently holds statistics for."""
        return [name for e in self.estimators for name in e.statistics()]

    @property
    def candidates(self) -> list[str]:
        """DMBN's candidates: the static estimators, smallest β first."""
        return list(self._static.names) if self._static else []

    @property
    def beta_star(self) -> Tensor | None:
        """DMBN's β* per layer from the last finished epoch (None without DMBN or before one)."""
        dmbn = self.estimator("dmbn")
        return dmbn.beta_star if dmbn else None

    def estimator(self, kind: str) -> Estimator | None:
        return next((e for e in self.estimators if e.kind == kind), None)

    def statistics(self, name: str) -> Statistics:
        """(mean, var) flat vectors of estimator ``name``."""
        for e in self.estimators:
            held = e.statistics()
            if name in held:
                return held[name]
        raise KeyError(f"no estimator {name!r}; this bank has {self.names}")

    def stage_statistics(self, stage: str) -> dict[str, Statistics]:
        """The statistics held now by the estimators of one stage (``EstimatorKind.stage``)."""
        return {n: s for e in self.estimators if e.stage == stage for n, s in e.statistics().items()}

    def use(self, name: str):
        """Context manager: the model normalises with estimator ``name``'s statistics."""
        return using_statistics(self.model, *self.statistics(name))

    # -- training-time updates ---------------------------------------------------------------
    def start_epoch(self) -> None:
        static = self._static
        self._epoch_start = (static.mean.clone(), static.var.clone()) if static else ()
        self.epoch_steps = 0
        for e in self.estimators:
            e.start_epoch()

    @torch.no_grad()
    def observe(self) -> None:
        """Fold the batch statistics of the training forward just run into every estimator."""
        if self._observers:
            batch = Batch(self._batch_mean, self._batch_var, self._count_per_channel())
            for e in self._observers:
                e.observe(batch)
        self.ema_mean.lerp_(self._batch_mean.expand_as(self.ema_mean), self._weights)
        self.ema_var.lerp_(self._batch_var.expand_as(self.ema_var), self._weights)
        self.epoch_steps += 1

    @torch.no_grad()
    def finish_epoch(self, esm_mu: Tensor, esm_sigma: Tensor | None = None) -> Tensor | None:
        """End the epoch: the static candidates' ESM_μ (and ESM_σ) ``[candidates, layers]`` let
        DMBN and its variants choose β* per layer; returns DMBN's β* (None without DMBN)."""
        if self._epoch_start is None:
            raise RuntimeError("finish_epoch() called without start_epoch()")
        expected = (len(self.candidates), len(self.layout.sizes))
        for name, esm in (("ESM_μ", esm_mu), ("ESM_σ", esm_sigma)):
            if esm is not None and tuple(esm.shape) != expected:
                raise ValueError(f"expected {name} of shape {expected}, got {tuple(esm.shape)}")
        context = None if self._static is None else EpochContext(
            self.betas, esm_mu, esm_sigma, self._epoch_start, (self._static.mean, self._static.var),
            self.epoch_steps)
        for e in self.estimators:
            e.finish_epoch(context)
        self._epoch_start = None
        return self.beta_star

    def finish_training(self, context: TrainingContext) -> None:
        for e in self.estimators:
            e.finish_training(context)

    def reopen(self) -> list[str]:
        """A finished run goes on: drop the final weights' estimators; returns their names."""
        dropped = list(self.stage_statistics("final"))
        for e in self.estimators:
            e.reopen()
        return dropped

    # -- export and checkpoints ------------------------------------------------------------------
    def export(self) -> EstimatorStatistics:
        names = self.names
        stats = [self.statistics(n) for n in names]
        batches = {n: b for e in self.estimators for n, b in e.prediction_batches().items()}
        return EstimatorStatistics(names, torch.stack([m for m, _ in stats]).cpu(),
                                   torch.stack([v for _, v in stats]).cpu(), self.layout, batches)

    def state_dict(self) -> dict:
        return {"ema_mean": self.ema_mean, "ema_var": self.ema_var,
                "estimators": {e.kind: e.state_dict() for e in self.estimators}}

    def load_state_dict(self, state: dict) -> None:
        state = _plug_in_state(state)
        missing = [e.kind for e in self.estimators if e.kind not in state["estimators"]]
        if missing:
            raise ValueError(f"the bank's state has no estimator {', '.join(missing)} "
                             f"(it holds {', '.join(state['estimators'])})")
        self.ema_mean.copy_(state["ema_mean"])
        self.ema_var.copy_(state["ema_var"])
        for e in self.estimators:
            e.load_state_dict(state["estimators"][e.kind])


def _plug_in_state(state: dict) -> dict:
    """A bank state as this version writes it; a checkpoint of the bank before estimators were
    plug-ins (static, CMA and DMBN as fields, PreciseBN and recalibrated in ``extra``) is converted,
    so a run interrupted under that version resumes."""
    if "estimators" in state:
        return state
    extra = state.get("extra", {})
    return {"ema_mean": state["ema_mean"], "ema_var": state["ema_var"], "estimators": {
        "static": {}, "cma": {"steps": state["cma_steps"]},
        "dmbn": {"mean": state["dmbn_mean"], "var": state["dmbn_var"], "beta_star": state["beta_star"]},
        "precise": {"value": extra.get("precise")}, "recalibrated": {"value": extra.get("recalibrated")}}}


class OwnMomentum:
    """The thesis's protocol: no bank; BN keeps its own running statistics with momentum β, the
    single estimator ``static-β``. Same interface as ``EstimatorBank``, so a run has one path."""

    beta_star = None
    candidates: list[str] = []

    def __init__(self, model: nn.Module, beta: float) -> None:
        self.model, self.name = model, static_name(beta)
        for _, bn in batchnorm_layers(model):
            bn.momentum = beta

    @property
    def names(self) -> list[str]:
        return [self.name]

    def statistics(self, name: str) -> Statistics:
        if name != self.name:
            raise KeyError(f"no estimator {name!r}; this run has {self.names}")
        return read_buffers(self.model)

    def stage_statistics(self, stage: str) -> dict[str, Statistics]:
        return {self.name: read_buffers(self.model)} if stage == "epoch" else {}

    def start_epoch(self) -> None:
        pass

    def observe(self) -> None:
        pass  # BN updates its own buffers during the forward

    def finish_epoch(self, esm_mu: Tensor, esm_sigma: Tensor | None = None) -> None:
        return None

    def finish_training(self, context: TrainingContext) -> None:
        pass

    def reopen(self) -> list[str]:
        return []

    def export(self) -> EstimatorStatistics:
        mean, var = read_buffers(self.model)
        return EstimatorStatistics([self.name], mean[None].cpu(), var[None].cpu(), LayerLayout.of(self.model))

    def state_dict(self) -> dict:
        return {}  # the buffers are in the model's state

    def load_state_dict(self, state: dict) -> None:
        pass


class PopulationStatistics:
    """Per-channel mean and unbiased variance of *all* samples of many batches, merged batch by
    batch from each batch's (count n_b, mean m_b, unbiased variance v_b) in float64 (Chan et al.):

        N ← N + n_b,   μ ← μ + (m_b − μ)·n_b / N,
        M₂ ← M₂ + (n_b − 1)·v_b + (m_b − μ_old)²·n_b·N_old / N,   σ² = M₂ / (N − 1).

    Batches of different sizes weigh by their size, and the spread of the batch means enters the
    variance: fvcore's ``_PopulationVarianceEstimator`` (``update_bn_stats`` since 2021), with
    n_b counting every element of a channel (samples × spatial positions).
    """

    def __init__(self) -> None:
        self.count: Tensor | None = None
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def update(self, count: Tensor, batch_mean: Tensor, batch_var: Tensor) -> None:
        count, batch_mean, batch_var = (t.double() for t in (count, batch_mean, batch_var))
        if self.count is None:
            self.count, self.mean, self.m2 = count, batch_mean, (count - 1) * batch_var
            return
        total = self.count + count
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * count / total
        self.m2 = self.m2 + (count - 1) * batch_var + delta ** 2 * self.count * count / total
        self.count = total

    def statistics(self) -> tuple[Tensor, Tensor]:
        if self.count is None:
            raise ValueError("PreciseBN needs at least one batch")
        return self.mean, self.m2 / (self.count - 1)


@torch.no_grad()
def precise_statistics(model: nn.Module, batches: Iterable[Tensor]) -> tuple[Tensor, Tensor]:
    """PreciseBN (Wu & Johnson 2021): population statistics of every BN layer's input over
    ``batches`` with the current weights (``PopulationStatistics``, as fvcore's ``update_bn_stats``).

    Runs forwards in train mode, so each layer sees the batch-normalised outputs of the layers
    before it, as in training; the model's buffers, momenta and mode are restored afterwards.
    """
    layers = [bn for _, bn in batchnorm_layers(model)]
    layout = LayerLayout.of(model)
    saved_momenta = [bn.momentum for bn in layers]
    saved_steps = [bn.num_batches_tracked.clone() for bn in layers]  # train forwards count them
    was_training = model.training
    counts: list[int] = [0] * len(layers)
    hooks = [bn.register_forward_pre_hook(_count_into(counts, i)) for i, bn in enumerate(layers)]
    population = PopulationStatistics()
    with preserved_statistics(model):
        for bn in layers:
            bn.momentum = 1.0
        model.train()
        try:
            for x in batches:
                model(x)
                per_channel = layout.per_channel(torch.tensor(counts, dtype=torch.float64,
                                                              device=layers[0].running_mean.device))
                population.update(per_channel, *read_buffers(model))
        finally:
            for hook in hooks:
                hook.remove()
            for bn, momentum, steps in zip(layers, saved_momenta, saved_steps):
                bn.momentum = momentum
                bn.num_batches_tracked.copy_(steps)
            model.train(was_training)
    dtype = layers[0].running_mean.dtype
    mean, var = population.statistics()
    return mean.to(dtype), var.to(dtype)


def _count_into(counts: list[int], index: int):
    """A forward pre-hook recording how many elements per channel a BN layer's input holds."""
    def hook(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        x = inputs[0]
        counts[index] = x.numel() // x.shape[1]
    return hook
