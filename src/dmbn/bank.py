"""Holders: what carries the estimators of one training run and feeds them every batch.

* ``EstimatorBank``: any kinds of ``dmbn.names.ESTIMATORS`` riding along one training trajectory.
* ``OwnMomentum``: the thesis's protocol, BN's own buffers at momentum β, no bank.

Both have the interface ``StatisticsHolder``, so a training run (``dmbn.train.Run``) has one path.

How the bank observes batch statistics at no cost: while it is attached, every BN layer's buffers
are views into one flat vector and its momentum is 1.0, so after each training forward that vector
holds exactly the last batch's mean and unbiased variance for all layers. All plain EMA rows
(static, CMA, horizon-matched) live in one ``[rows, channels]`` tensor that one ``lerp_`` updates.
``close()`` (or leaving ``with bank:``) gives the model back as it was at ``attach()``
(``dmbn.bn_state``): each layer's own buffers and values, momentum, counter, modes, no hooks.
"""

from __future__ import annotations

from typing import Iterable, Protocol

import torch
from torch import Tensor, nn

from .bn_state import BNState, CallCounter, checked_layers, warn_not_run
from .estimators import (DMBN, Batch, CausalDMBN, EmaRows, Estimator, EpochContext, Setup, StaticEMA,
                         Statistics, TrainingContext, estimator_class)
from .names import ESTIMATORS, STAGES, STATIC_BETAS, static_name
from .statistics import (EstimatorStatistics, LayerLayout, batchnorm_layers, read_buffers, using_statistics,
                         write_buffers)


# -- holders ---------------------------------------------------------------------------------------

class StatisticsHolder(Protocol):
    """What a training run drives: the ``EstimatorBank`` or ``OwnMomentum``."""

    candidates: list[str]
    beta_star: Tensor | None
    choices: dict[str, Tensor]

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
    the final weights, ``finish_training(context)``. ``names`` lists every estimator row it holds,
    ``statistics(name)`` gives one (flat mean, var), ``use(name)`` evaluates with it.

    The bank attaches when built (BN momentum 1, buffers shared, count hooks): ``close(load=name)``
    or leaving ``with EstimatorBank(model) as bank:`` restores the model as it was at ``attach()``
    (``load``: then copies that estimator's statistics into the layers' own buffers); the
    estimators keep their statistics, and ``attach()`` goes on observing. BN layers without running
    statistics are left alone (named in a warning); the first ``observe()`` refuses a layer that ran
    more than once since ``attach()`` (a layer shared within a forward) and names those that did not
    run.
    """

    def __init__(self, model: nn.Module, betas: Iterable[float] = STATIC_BETAS,
                 estimators: Iterable[str] = ("static", "dmbn", "cma"), kappa: float = 1.0,
                 prediction_batch: int | None = None) -> None:
        self.model = model
        self._layers = checked_layers(model)
        self.layout = LayerLayout.of(model)
        if not self.layout.sizes:
            raise ValueError("the model has no BatchNorm layer to estimate statistics for")
        self.betas = tuple(sorted(float(b) for b in betas))
        classes = _estimator_classes(set(estimators))  # checked before the model is touched
        self.device = self._layers[0][1].running_mean.device
        setup = Setup(self.layout, self.device, self.betas, kappa, prediction_batch)
        self.estimators = [cls(setup) for cls in classes]
        self._bind_ema_rows()
        self._observers = [e for e in self.estimators if type(e).observe is not Estimator.observe]
        self._needs_count = any(e.needs_count for e in self.estimators)
        self._saved: BNState | None = None
        self._counter: CallCounter | None = None
        self._checked = False  # whether observe() has checked which layers ran since attach()
        self._last_counts: tuple[int, ...] = ()
        self._count: Tensor | None = None
        self.epoch_steps = 0
        self._epoch_start: Statistics | tuple | None = None  # the candidates' state at the start
        self.attach()

    # -- attaching to the model ------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self._saved is not None

    def attach(self) -> "EstimatorBank":
        """Borrow the model's BN layers (a no-op when attached): save their state, share their
        buffers in one vector written at momentum 1, count their inputs."""
        if self._saved is None:
            self._saved = BNState(self.model)
            self._batch_mean, self._batch_var = self._pool_buffers()
            self._counter = CallCounter(self._saved, self._layers, training_only=True)
            self._checked = False
        return self

    def close(self, load: str | None = None) -> None:
        """Give the model back as it was at ``attach()`` (buffers, momenta, counters, modes, no
        hooks); with ``load``, that estimator's statistics go into the layers' own buffers."""
        statistics = self.statistics(load) if load is not None else None  # an unknown name: refused first
        if self._saved is not None:
            self._saved.restore()
            self._saved = self._counter = None
        if statistics is not None:
            write_buffers(self.model, *statistics)

    def __enter__(self) -> "EstimatorBank":
        return self.attach()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _pool_buffers(self) -> Statistics:
        """Make every BN buffer a view into one flat vector and have BN write raw batch stats there."""
        layers = [bn for _, bn in self._layers]
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
        device, channels = self.device, self.layout.channels
        self._weights = torch.tensor(momenta, device=device).unsqueeze(1)
        self.ema_mean = torch.zeros(len(momenta), channels, device=device)
        self.ema_var = torch.ones(len(momenta), channels, device=device)
        first = 0
        for e in rows:
            part = slice(first, first + len(e.names))
            e.bind(self.ema_mean[part], self.ema_var[part], self._weights[part])
            first = part.stop
        self._static = next((e for e in rows if isinstance(e, StaticEMA)), None)

    def _check_first_step(self) -> None:
        """At the first ``observe()`` after ``attach()``: refuse a layer that ran more than once in
        train mode, name those that did not run; then drop the hooks unless counts are needed."""
        ran = self._counter.ran_once("in train mode since attach() (call observe() after every "
                                     "training forward)")
        warn_not_run([name for (name, _), r in zip(self._layers, ran) if not r],
                     "in the first observed training forward")
        self._checked = True
        if self._needs_count:
            self._counter.stop_counting()  # counted once; from now on only the values per channel
        else:
            self._counter.remove()

    def _count_per_channel(self) -> Tensor | None:
        """Values per channel of the last batch (only if an estimator asks); rebuilt only when the
        batch size changed, so a step usually reuses the same tensor."""
        if not self._needs_count:
            return None
        if tuple(self._counter.elements) != self._last_counts:
            self._last_counts = tuple(self._counter.elements)
            self._count = self.layout.per_channel(torch.tensor(self._last_counts, dtype=torch.float64,
                                                               device=self.device))
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

    @property
    def choices(self) -> dict[str, Tensor]:
        """β* per layer from the last finished epoch of every kind that chooses one (``dmbn`` and
        its variants by another criterion, ``dmbn-sigma``, ``dmbn-mu-sigma``), by kind."""
        return {e.kind: e.beta_star for e in self.estimators if isinstance(e, DMBN) and e.beta_star is not None}

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
        if self._saved is None:
            raise RuntimeError("the bank is closed: attach() it again before observing training batches")
        if not self._checked:
            self._check_first_step()
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


def _estimator_classes(kinds: set[str]) -> list[type[Estimator]]:
    """The classes of ``kinds`` by stage (``dmbn.names.STAGES``: the order the ESM passes measure
    them in), registry order within a stage; unknown kinds, and choosers of β* without their
    static candidates, are refused."""
    unknown = kinds - set(ESTIMATORS)
    if unknown:
        raise KeyError(f"unknown estimator kinds {sorted(unknown)} (kinds: {', '.join(ESTIMATORS)})")
    order = sorted(kinds, key=lambda k: (STAGES.index(ESTIMATORS[k].stage), list(ESTIMATORS).index(k)))
    classes = [estimator_class(k) for k in order]
    choosers = [c.kind for c in classes if issubclass(c, (DMBN, CausalDMBN))]
    if choosers and "static" not in kinds:
        raise ValueError(f"{', '.join(choosers)} choose among the static candidates: add 'static' "
                         "to the estimators")
    return classes


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
    choices: dict[str, Tensor] = {}
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
