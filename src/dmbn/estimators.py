"""The estimator bank: many BatchNorm running-statistics estimators fed by one training trajectory.

In train mode BN normalises with batch statistics and only *writes* its running estimates, so the
momentum β never changes the weights. One run can therefore carry every estimator:

* ``static-β``     PyTorch's EMA with momentum β (unbiased batch variance, as PyTorch keeps it)
* ``cma``          cumulative moving average (PyTorch's ``momentum=None``)
* ``dmbn``         Dynamic Momentum BN: per layer and epoch, the β* whose static estimator has
                   the smallest ESM_μ at that epoch's end drives this layer's EMA over that epoch
* ``precise``      PreciseBN: population statistics (all samples of N training batches, Bessel-
                   corrected once) of the final weights, as fvcore's ``update_bn_stats``
* ``recalibrated`` expected statistics measured layer by layer on the ESM set (ESM = 0)

How batch statistics are observed at no cost: every BN layer's buffers become views into one flat
vector and its momentum is set to 1.0, so after each training forward that vector holds exactly
the last batch's mean and unbiased variance for all layers. ``observe()`` then updates all EMAs
with one ``lerp_`` on an ``[estimators, channels]`` tensor.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from .names import STATIC_BETAS, static_name
from .statistics import (EstimatorStatistics, LayerLayout, batchnorm_layers, preserved_statistics,
                         read_buffers, using_statistics)


class EstimatorBank:
    """Running-statistics estimators for every BN layer of ``model``.

    Call ``start_epoch()`` before an epoch, ``observe()`` after every training forward, and
    ``finish_epoch(esm_mu)`` at the epoch's end with the static candidates' ESM_μ per layer
    (from ``dmbn.esm``) to set DMBN's β* for that epoch.
    """

    def __init__(self, model: nn.Module, betas: Iterable[float] = STATIC_BETAS,
                 dmbn: bool = True, cma: bool = True) -> None:
        self.model = model
        self.layout = LayerLayout.of(model)
        if not self.layout.sizes:
            raise ValueError("the model has no BatchNorm layer to estimate statistics for")
        self.betas = tuple(sorted(float(b) for b in betas))
        if dmbn and not self.betas:
            raise ValueError("DMBN chooses among static candidates: give at least one β")
        self.has_dmbn, self.has_cma = dmbn, cma
        self._batch_mean, self._batch_var = self._pool_buffers()
        device, channels = self._batch_mean.device, self.layout.channels
        rows = len(self.betas) + int(cma)
        # EMA rows: the static candidates, then CMA (its weight 1/n changes every step).
        self._weights = torch.tensor(self.betas + (1.0,) * int(cma), device=device).unsqueeze(1)
        self.ema_mean = torch.zeros(rows, channels, device=device)
        self.ema_var = torch.ones(rows, channels, device=device)
        self.dmbn_mean = torch.zeros(channels, device=device)
        self.dmbn_var = torch.ones(channels, device=device)
        self.cma_steps = 0
        self.epoch_steps = 0
        self.beta_star: Tensor | None = None  # β* per layer from the last finished epoch
        self.extra: dict[str, tuple[Tensor, Tensor]] = {}  # precise, recalibrated (end of training)
        self._epoch_start: tuple[Tensor, Tensor] | None = None

    def _pool_buffers(self) -> tuple[Tensor, Tensor]:
        """Make every BN buffer a view into one flat vector and have BN write raw batch stats there."""
        layers = [bn for _, bn in batchnorm_layers(self.model)]
        flat_mean = torch.cat([bn.running_mean.detach() for bn in layers])
        flat_var = torch.cat([bn.running_var.detach() for bn in layers])
        for bn, m, v in zip(layers, self.layout.split(flat_mean), self.layout.split(flat_var)):
            bn.running_mean, bn.running_var = m, v
            bn.momentum = 1.0
        return flat_mean, flat_var

    # -- names -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Every estimator this bank currently holds statistics for."""
        return self._ema_names + ["dmbn"] * self.has_dmbn + list(self.extra)

    @property
    def _ema_names(self) -> list[str]:
        """Names of the rows of ``ema_mean``/``ema_var``."""
        return self.candidates + ["cma"] * self.has_cma

    @property
    def candidates(self) -> list[str]:
        """DMBN's candidates: the static estimators, smallest β first."""
        return [static_name(b) for b in self.betas]

    def statistics(self, name: str) -> tuple[Tensor, Tensor]:
        """(mean, var) flat vectors of estimator ``name``."""
        if name == "dmbn" and self.has_dmbn:
            return self.dmbn_mean, self.dmbn_var
        if name in self.extra:
            return self.extra[name]
        if name not in self._ema_names:
            raise KeyError(f"no estimator {name!r}; this bank has {self.names}")
        row = self._ema_names.index(name)
        return self.ema_mean[row], self.ema_var[row]

    def use(self, name: str):
        """Context manager: the model normalises with estimator ``name``'s statistics."""
        return using_statistics(self.model, *self.statistics(name))

    # -- training-time updates ---------------------------------------------------------------
    def start_epoch(self) -> None:
        self._epoch_start = (self.ema_mean[: len(self.betas)].clone(),
                             self.ema_var[: len(self.betas)].clone())
        self.epoch_steps = 0

    @torch.no_grad()
    def observe(self) -> None:
        """Fold the batch statistics of the training forward just run into every EMA."""
        if self.has_cma:
            self.cma_steps += 1
            self._weights[-1] = 1.0 / self.cma_steps
        self.ema_mean.lerp_(self._batch_mean.expand_as(self.ema_mean), self._weights)
        self.ema_var.lerp_(self._batch_var.expand_as(self.ema_var), self._weights)
        self.epoch_steps += 1

    @torch.no_grad()
    def finish_epoch(self, candidate_esm_mu: Tensor) -> Tensor:
        """Choose β* per layer from the candidates' ESM_μ ``[candidates, layers]`` and update DMBN.

        The EMA is linear in its start state, so DMBN's EMA over this epoch with β* equals the
        β* candidate's end state plus ``(1-β*)^n`` times the difference of the two start states.
        Ties go to the smaller β (``argmin`` returns the first minimum).
        """
        if not self.has_dmbn:
            raise RuntimeError("this bank carries no DMBN estimator")
        if self._epoch_start is None:
            raise RuntimeError("finish_epoch() called without start_epoch()")
        n_candidates = len(self.betas)
        if tuple(candidate_esm_mu.shape) != (n_candidates, len(self.layout.sizes)):
            raise ValueError(f"expected ESM_μ of shape ({n_candidates}, {len(self.layout.sizes)}), "
                             f"got {tuple(candidate_esm_mu.shape)}")
        choice = candidate_esm_mu.to(self.ema_mean.device).argmin(dim=0)  # [layers]
        betas = torch.tensor(self.betas, dtype=torch.float64, device=self.ema_mean.device)
        self.beta_star = betas[choice]
        row = self.layout.per_channel(choice)
        channel = torch.arange(self.layout.channels, device=row.device)
        decay = ((1.0 - self.layout.per_channel(self.beta_star)) ** self.epoch_steps).to(self.ema_mean.dtype)
        start_mean, start_var = self._epoch_start
        self.dmbn_mean = self.ema_mean[row, channel] + decay * (self.dmbn_mean - start_mean[row, channel])
        self.dmbn_var = self.ema_var[row, channel] + decay * (self.dmbn_var - start_var[row, channel])
        self._epoch_start = None
        return self.beta_star

    # -- export and checkpoints ------------------------------------------------------------------
    def export(self) -> EstimatorStatistics:
        names = self.names
        stats = [self.statistics(n) for n in names]
        return EstimatorStatistics(names, torch.stack([m for m, _ in stats]).cpu(),
                                   torch.stack([v for _, v in stats]).cpu(), self.layout)

    def state_dict(self) -> dict:
        return {"ema_mean": self.ema_mean, "ema_var": self.ema_var, "dmbn_mean": self.dmbn_mean,
                "dmbn_var": self.dmbn_var, "cma_steps": self.cma_steps,
                "beta_star": self.beta_star, "extra": dict(self.extra)}

    def load_state_dict(self, state: dict) -> None:
        self.ema_mean.copy_(state["ema_mean"])
        self.ema_var.copy_(state["ema_var"])
        self.dmbn_mean = state["dmbn_mean"].to(self.ema_mean.device)
        self.dmbn_var = state["dmbn_var"].to(self.ema_mean.device)
        self.cma_steps = int(state["cma_steps"])
        if self.has_cma:
            self._weights[-1] = 1.0 / max(self.cma_steps, 1)
        self.beta_star = state["beta_star"]
        self.extra = dict(state["extra"])


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
