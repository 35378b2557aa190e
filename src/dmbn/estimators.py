"""Running-statistics estimators of BatchNorm as plug-ins: one class per kind, one interface.

In train mode BN normalises with batch statistics and only *writes* its running estimates, so the
momentum β never changes the weights. One run can therefore carry every estimator. Each kind is
one small class behind the ``Estimator`` interface (in the style of fvcore's ``precise_bn``), listed
in the registry ``dmbn.names.ESTIMATORS``; ``docs/ESTIMATORS.md`` states each one's definition and
cost. Notation: per channel, batch b of n values has mean m_b and unbiased variance v_b.

* ``static-β``     PyTorch's EMA with momentum β: μ ← (1−β)μ + β m_b, σ² ← (1−β)σ² + β v_b
* ``static-biased-β`` the same EMA of the *biased* batch variance: σ² ← (1−β)σ² + β v_b (n−1)/n
* ``cma``          cumulative average (PyTorch's ``momentum=None``): β_t = 1/t
* ``horizon-β``    the static EMA at per-step momentum 1 − (1−β)^κ, κ = batch size / reference
                   batch size: the same horizon in samples whatever the batch size
* ``moment-β``     EMAs of E[x] and E[x²], σ² = (E[x²] − E[x]²) / (1 − β/((2−β)n))
* ``dmbn``         Dynamic Momentum BN: per layer and epoch, the β* whose static EMA has the
                   smallest ESM_μ at that epoch's end drives this layer's EMA over that epoch
* ``dmbn-sigma``, ``dmbn-mu-sigma``: the same, choosing by ESM_σ, or by ESM_μ + ESM_σ
* ``dmbn-causal``  a real per-layer EMA whose β during epoch e is epoch e−1's β* (0.1 first)
* ``precise``      PreciseBN: population statistics of the final weights (fvcore's ``update_bn_stats``)
* ``precise-mean-biased``, ``precise-mean-unbiased``: the same batches' plain averages of the batch
                   means and of the biased / unbiased batch variances (fvcore's earlier PreciseBN)
* ``recalibrated`` expected statistics measured layer by layer on the ESM set (ESM = 0)
* ``test-batch``   prediction-time BN: no statistics; each test batch is normalised with its own

A holder (``dmbn.bank``) carries the estimators of one run and feeds them every training batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from . import distributed
from .batches import CallFn, forward
from .bn_state import CallCounter, checked_layers, preserved, warn_not_run
from .names import ESTIMATORS, static_name
from .statistics import LayerLayout, channel_values

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
    _precise: "PrecisePass | None" = field(default=None, init=False, repr=False)

    def precise(self) -> "PrecisePass":
        """The one pass over PreciseBN's batches that ``precise``, ``precise-mean-*`` and the
        spread diagnostic all read (run on first use, then kept: one pass, however many rows)."""
        if self._precise is None:
            self._precise = precise_pass(self.model, self.training_batches())
        return self._precise


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
    smaller last batch). Under ``torch.distributed`` a step's batch is every rank's batch
    together: m_b and E[x²] are pooled over the ranks weighted by their counts, and n is their
    sum (``dmbn.distributed``; one all-reduce per ``observe``, which every rank must call)."""

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
        if distributed.active():  # DDP: this step's batch is every rank's batch, weighted by counts
            self.count, mean, square = distributed.pooled_means(self.count, mean, square)
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


class StaticBiasedEMA(Estimator):
    """The static EMA of the *biased* batch variance, one row per β:
    μ ← (1−β) μ + β m_b (as ``static``),  σ² ← (1−β) σ² + β v_b (n−1)/n.

    Train-mode BN normalises each batch with its biased variance v_b (n−1)/n, while PyTorch's
    ``running_var`` averages the unbiased v_b. This row is what the running statistics would be
    if BN kept the variance it normalises with: its σ̂² is ``static-β``'s times (n−1)/n exactly
    (for a fixed n), so it separates a Bessel factor from any other cause of a shortfall (issue 27).
    n is the batch's values per channel (samples × positions; counted by the bank's pre-hooks, as
    for ``moment``), so a smaller last batch gets its own factor. Under ``torch.distributed`` it
    uses this rank's batch, as ``static`` does (BN's buffers hold this rank's statistics)."""

    kind = "static-biased"
    needs_count = True

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.betas = setup.betas
        self.names = [static_name(b, self.kind) for b in self.betas]
        self.beta = torch.tensor(self.betas, device=self.device).unsqueeze(1)
        self.mean, self.var = self._zeros_ones(len(self.betas))
        self._count: Tensor | None = None
        self._biased: Tensor | None = None

    def observe(self, batch: Batch) -> None:
        if batch.count is not self._count:  # a new batch size: (n−1)/n changes (the bank reuses the tensor)
            self._count, self._biased = batch.count, ((batch.count - 1) / batch.count).to(self.var.dtype)
        mean, var = batch.mean.to(self.mean.dtype), batch.var.to(self.var.dtype) * self._biased
        self.mean.lerp_(mean.expand_as(self.mean), self.beta)
        self.var.lerp_(var.expand_as(self.var), self.beta)

    def statistics(self) -> dict[str, Statistics]:
        return {name: (self.mean[i], self.var[i]) for i, name in enumerate(self.names)}

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var}

    def load_state_dict(self, state: dict) -> None:
        self.mean.copy_(state["mean"])
        self.var.copy_(state["var"])


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
    with the final weights (``precise_statistics``). The same pass gives the spread diagnostic
    (``PrecisePass.spread``, written as ``precise_spread.csv``), kept in ``self.spread``."""

    kind = "precise"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.spread: list[dict] | None = None

    def measure(self, context: TrainingContext) -> Statistics:
        measured = context.precise()
        self.spread = measured.spread
        return measured.population

    def reopen(self) -> None:
        super().reopen()
        self.spread = None

    def state_dict(self) -> dict:
        return {"value": self.value, "spread": self.spread}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]
        self.spread = state.get("spread")  # a checkpoint from before the diagnostic: none


class PreciseMean(FinalEstimator):
    """fvcore's earlier PreciseBN (``update_bn_stats`` up to commit 1c6e25b, 2020-10-12; replaced by
    the population variance in d3b3b12, 2021-05-17, "improvements in PreciseBN"): over the same
    ``train.precise_batches`` batches as ``precise`` (the same pass), μ̂ = the plain mean of the
    batch means and σ̂² = the plain mean of the per-batch variances, each batch weighing 1 whatever
    its size, as fvcore's running average ``x += (x_b − x) / (k + 1)`` did. For batches of equal
    size μ̂ is the population mean; for unequal sizes it is not (a batch weighs 1, not n_b). The
    spread of the batch means never enters σ̂² (unlike ``precise``)."""

    unbiased = True

    def measure(self, context: TrainingContext) -> Statistics:
        measured = context.precise()
        return measured.mean_unbiased if self.unbiased else measured.mean_biased


class PreciseMeanUnbiased(PreciseMean):
    """``precise-mean-unbiased``: the mean of the *unbiased* batch variances v_b, which is what
    fvcore's old code computed (it averaged BN's ``running_var`` at momentum 1, i.e. v_b)."""

    kind = "precise-mean-unbiased"
    unbiased = True


class PreciseMeanBiased(PreciseMean):
    """``precise-mean-biased``: the mean of the *biased* batch variances v_b (n_b−1)/n_b, the
    variances train-mode BN normalised those batches with (fvcore never computed this one)."""

    kind = "precise-mean-biased"
    unbiased = False


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
    """The class of an estimator kind, from the registry (a built-in's, or a user's registered one)."""
    if kind not in ESTIMATORS:
        raise KeyError(f"unknown estimator kind {kind!r} (kinds: {', '.join(ESTIMATORS)})")
    cls = ESTIMATORS[kind].estimator_class()
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise TypeError(f"estimator {kind!r}: {cls!r} is no subclass of dmbn.Estimator")
    return cls


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


class BatchAverages:
    """Per channel, plain averages over batches (each batch weighs 1, whatever its size) of the
    batch mean, the unbiased and the biased batch variance and 1/n_b, and the centred sum of
    squares of the batch means (Welford), in float64: fvcore's earlier PreciseBN and the spread
    diagnostic. n_b counts every element of a channel (samples × spatial positions)."""

    def __init__(self) -> None:
        self.batches: Tensor | None = None  # per channel (a tensor, so that DDP pools it like the rest)
        self.mean = self.m2 = self.unbiased = self.biased = self.inverse_count = None

    def update(self, count: int, batch_mean: Tensor, batch_var: Tensor) -> None:
        mean, var = batch_mean.double(), batch_var.double()
        if self.batches is None:
            self.batches = torch.zeros_like(mean)
            self.mean, self.m2, self.unbiased, self.biased, self.inverse_count = (
                torch.zeros_like(mean) for _ in range(5))
        self.batches += 1
        delta = mean - self.mean
        self.mean += delta / self.batches
        self.m2 += delta * (mean - self.mean)
        self.unbiased += (var - self.unbiased) / self.batches
        self.biased += (var * ((count - 1) / count) - self.biased) / self.batches
        self.inverse_count += (1.0 / count - self.inverse_count) / self.batches

    def all_reduce(self, like: Tensor) -> None:
        """Under ``torch.distributed``: every rank's batches together (each batch weighs 1); a rank
        without batches adds none. A no-op in a single process."""
        if not distributed.active():
            return
        if self.batches is None:
            self.batches, self.mean, self.m2, self.unbiased, self.biased, self.inverse_count = (
                torch.zeros_like(like, dtype=torch.float64) for _ in range(6))
        own = self.batches.clone()
        self.batches, self.mean, self.m2 = distributed.pooled_moments(own, self.mean, self.m2)
        _, self.unbiased, self.biased, self.inverse_count = distributed.pooled_means(
            own, self.unbiased, self.biased, self.inverse_count)
        if not bool((self.batches > 0).all()):
            self.batches = None

    def spread(self, pooled_var: Tensor) -> dict:
        """Var_b(m_b) (unbiased over batches; NaN for one batch) against pooled_var / B, B the
        harmonic mean of the batch sizes (n for equal sizes): per channel, then averaged over the
        channels where the ratio is finite (a channel of zero variance has none)."""
        batches = int(self.batches[0])
        var_of_means = self.m2 / (batches - 1) if batches > 1 else torch.full_like(self.m2, float("nan"))
        ratio = var_of_means / (pooled_var.double() * self.inverse_count)
        finite = ratio[torch.isfinite(ratio)]
        return {"batch_size": float(1.0 / self.inverse_count.mean()), "batches": batches,
                "var_of_batch_means": float(var_of_means.mean()), "pooled_var": float(pooled_var.double().mean()),
                "ratio": float(finite.mean()) if finite.numel() else float("nan")}


@dataclass
class PrecisePass:
    """What one pass over PreciseBN's batches gives, flat over the layers with running statistics
    in their dtype: the population statistics (``precise``), the plain means over batches of the
    batch means with the unbiased or biased batch variances (``precise-mean-*``), and per layer
    (1-based, as in ``esm.csv``) the spread of the batch means (``BatchAverages.spread``; layers
    that ran in no batch have no row)."""

    population: Statistics
    mean_unbiased: Statistics
    mean_biased: Statistics
    measured: list[tuple[int, BatchAverages, Tensor]]  # (layer, its batch averages, its pooled variance)

    @property
    def spread(self) -> list[dict]:
        """Computed on request: it reads numbers out of the tensors (``.item()``), which a model
        on the ``meta`` device, or a caller who wants the population alone, must not pay for."""
        return [{"layer": layer, **average.spread(var)} for layer, average, var in self.measured]


@torch.no_grad()
def precise_statistics(model: nn.Module, batches: Iterable[Any], call_fn: CallFn | None = None) -> Statistics:
    """PreciseBN (Wu & Johnson 2021): population statistics of every BN layer's input over
    ``batches`` with the current weights (``PopulationStatistics``, as fvcore's ``update_bn_stats``):
    flat (mean, unbiased variance) over the layers with running statistics, in their dtype.
    ``precise_pass`` says how, and gives the other rows the same pass yields."""
    return precise_pass(model, batches, call_fn).population


@torch.no_grad()
def precise_pass(model: nn.Module, batches: Iterable[Any], call_fn: CallFn | None = None) -> PrecisePass:
    """One pass of train-mode forwards over ``batches`` with the current weights, accumulating every
    BN layer's input statistics batch by batch: population statistics (``PopulationStatistics``)
    and plain averages over batches (``BatchAverages``), as ``PrecisePass`` holds them.

    Each batch goes through ``dmbn.batches.forward`` (tensors, tuples, dicts; ``call_fn`` for
    anything else) in train mode, at BN momentum 1, so each layer sees the batch-normalised
    outputs of the layers before it, as in training, and its buffers hold the batch's mean and
    unbiased variance after the forward. Everything is restored afterwards (``bn_state.preserved``):
    buffers, momenta, counters, each module's mode. A layer that never ran keeps its own statistics
    (named in a warning); one that runs twice in a forward is refused.

    Under ``torch.distributed`` each layer's statistics pool every rank's batches, each weighted
    by its size (``dmbn.distributed``; every rank calls, with its own number of batches, none
    included). A ``SyncBatchNorm`` layer that syncs (a process group of several ranks) writes the
    *global* batch's statistics into its buffers; for it the batch's moments are taken from this
    rank's input instead (a pre-hook), so that the pooling over ranks counts every value once.
    """
    named = checked_layers(model)
    layers = [bn for _, bn in named]
    populations = [PopulationStatistics() for _ in layers]
    averages = [BatchAverages() for _ in layers]
    with preserved(model) as state:
        counter = CallCounter(state, named)
        local: dict[int, Statistics] = {}  # this rank's own moments of a syncing SyncBatchNorm's input
        for i, bn in enumerate(layers):
            if distributed.syncs_batch_statistics(bn):
                state.hook(bn, _input_moments(local, i))
        model.train()
        for bn in layers:
            bn.momentum = 1.0
        for batch in batches:
            counter.reset()
            forward(model, batch, call_fn)
            for i, (bn, population, average, ran, count) in enumerate(zip(
                    layers, populations, averages, counter.ran_once("in one forward"), counter.elements)):
                if not ran:
                    continue
                if i in local:  # a syncing SyncBatchNorm: this rank's own values
                    mean, var = local.pop(i)
                else:  # the buffers hold this batch's statistics (copies: the next forward overwrites them)
                    mean, var = bn.running_mean.detach().clone(), bn.running_var.detach().clone()
                population.update(torch.full_like(mean, count, dtype=torch.float64), mean, var)
                average.update(count, mean, var)
        all_reduce_populations(populations, layers)  # DDP: every rank's batches
        for average, bn in zip(averages, layers):
            average.all_reduce(bn.running_mean)
        if all(p.count is None for p in populations):
            raise ValueError("PreciseBN needs at least one batch")
    warn_not_run([name for (name, _), p in zip(named, populations) if p.count is None], "in any batch")
    own = [(bn.running_mean, bn.running_var) for bn in layers]  # a layer that never ran: its own
    population = [p.statistics() if p.count is not None else o for p, o in zip(populations, own)]
    mean_unbiased = [(a.mean, a.unbiased) if a.batches is not None else o for a, o in zip(averages, own)]
    mean_biased = [(a.mean, a.biased) if a.batches is not None else o for a, o in zip(averages, own)]
    measured = [(i + 1, a, var) for i, (a, p, (_, var)) in enumerate(zip(averages, populations, population))
                if a.batches is not None and p.count is not None]
    dtype = layers[0].running_mean.dtype
    return PrecisePass(*(_flat(rows, dtype) for rows in (population, mean_unbiased, mean_biased)), measured)


def _flat(statistics: list[Statistics], dtype: torch.dtype) -> Statistics:
    return (torch.cat([m.to(dtype) for m, _ in statistics]), torch.cat([v.to(dtype) for _, v in statistics]))


def all_reduce_populations(populations: list[PopulationStatistics], layers: list[nn.Module]) -> None:
    """Under ``torch.distributed``: pool every rank's batches into each layer's population
    (``dmbn.distributed``, one ``pooled_moments`` over all layers' channels together), so each rank
    holds the statistics of all of them, each weighted by its true size; a rank on which a layer
    never ran adds zeros, and a layer that ran on no rank stays empty. A no-op in a single process."""
    if not distributed.active():
        return
    channels = [bn.running_mean.numel() for bn in layers]
    device = layers[0].running_mean.device
    own = [(p.count, p.mean, p.m2) if p.count is not None else (torch.zeros(c, dtype=torch.float64, device=device),) * 3
           for p, c in zip(populations, channels)]
    pooled = distributed.pooled_moments(*(torch.cat([o[k].to(device) for o in own]) for k in range(3)))
    for population, count, mean, m2 in zip(populations, *(t.split(channels) for t in pooled)):
        if bool((count > 0).all()):
            population.count, population.mean, population.m2 = count, mean, m2


def _input_moments(local: dict[int, Statistics], index: int):
    """A forward pre-hook storing this rank's mean and unbiased variance of the layer's input per
    channel in float64 (0 for a single value), as a plain BN layer's buffers hold them at momentum 1."""
    def pre_hook(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        values = channel_values(inputs[0].detach()).double()
        n = values.shape[1]
        local[index] = (values.mean(dim=1), values.var(dim=1, unbiased=False) * (n / max(n - 1, 1)))
    return pre_hook
