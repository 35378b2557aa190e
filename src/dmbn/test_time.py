"""Test-time BatchNorm statistics: rules that let the test stream itself into the statistics, the
baselines of distribution-shift work. Each rule is one small class (the math below and in its
docstring); ``stream_logits`` runs a model over a stream of test batches in order, every BN layer
normalising batch k with the statistics its rule gives from the layer's source statistics
(μ_s, σ²_s: what the model carries) and batch k's own, taken where the batch meets the layer:

    μ_b = mean of the layer's input over the batch (and positions),
    σ²_b = biased variance of the same (what train-mode BN normalises with), n = values per channel.

Rules, with their sources:

* ``TestBatch``: (μ_b, σ²_b): prediction-time BN (Nado et al. 2020).
* ``SourceTargetMix(N)``: p = N / (N + n), μ = p μ_s + (1 − p) μ_b, σ² = p σ²_s + (1 − p) σ²_b
  (Schneider et al., NeurIPS 2020: N source samples' worth of prior against n target samples).
* ``RobustEMA(α = 0.05)``: from (μ_s, σ²_s), μ ← (1 − α) μ + α μ_b, σ² ← (1 − α) σ² + α σ²_b,
  then normalise with the updated pair (RoTTA's robust BN, Yuan et al., CVPR 2023).
* ``DecayingMomentum``: PyTorch's running-statistics update with momentum m_k = 0.1 · 0.94^k +
  0.005 at the k-th batch (k = 0, 1, …), the unbiased batch variance as PyTorch stores it, then
  normalise with the updated pair. DUA (Mirza et al., CVPR 2022) updates on augmented copies of
  each test sample; here every batch is used as it comes, without augmentation.

The oracle, target recalibration on the whole shifted set, is ``dmbn.recalibrate`` with
``estimator="recalibrated"`` on that set. The model is left exactly as it was
(``bn_state.preserved``).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from .bn_state import checked_layers, preserved
from .statistics import channel_values


def batch_moments(x: Tensor) -> tuple[Tensor, Tensor, int]:
    """Per channel: mean, biased variance and the number of values (``statistics.channel_values``)."""
    values = channel_values(x)
    return values.mean(dim=1), values.var(dim=1, unbiased=False), values.shape[1]


class TestTimeRule:
    """Statistics for each test batch from the source pair and the batch's own; one instance per
    BN layer keeps whatever the rule carries from batch to batch."""

    name = "rule"
    __test__ = False  # "Test..." names a rule here, not a pytest class

    def __init__(self, source_mean: Tensor, source_var: Tensor) -> None:
        self.source_mean, self.source_var = source_mean.clone(), source_var.clone()

    def statistics(self, mean: Tensor, var: Tensor, n: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class TestBatch(TestTimeRule):
    """μ = μ_b, σ² = σ²_b (biased)."""

    name = "test-batch"

    def statistics(self, mean, var, n):
        return mean, var


class SourceTargetMix(TestTimeRule):
    """p = N / (N + n): μ = p μ_s + (1 − p) μ_b, σ² = p σ²_s + (1 − p) σ²_b."""

    name = "source-target-mix"

    def __init__(self, source_mean: Tensor, source_var: Tensor, prior: float = 16.0) -> None:
        if not prior >= 0:
            raise ValueError(f"prior N: {prior!r}, but a number of source samples must be >= 0")
        super().__init__(source_mean, source_var)
        self.prior = prior

    def statistics(self, mean, var, n):
        p = self.prior / (self.prior + n)
        return p * self.source_mean + (1 - p) * mean, p * self.source_var + (1 - p) * var


class RobustEMA(TestTimeRule):
    """μ ← (1 − α) μ + α μ_b, σ² ← (1 − α) σ² + α σ²_b from the source pair; the batch is
    normalised with the updated pair."""

    name = "robust-ema"

    def __init__(self, source_mean: Tensor, source_var: Tensor, alpha: float = 0.05) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha: {alpha!r}, but an EMA's weight must be in (0, 1]")
        super().__init__(source_mean, source_var)
        self.alpha, self.mean, self.var = alpha, source_mean.clone(), source_var.clone()

    def statistics(self, mean, var, n):
        self.mean = (1 - self.alpha) * self.mean + self.alpha * mean
        self.var = (1 - self.alpha) * self.var + self.alpha * var
        return self.mean, self.var


class DecayingMomentum(TestTimeRule):
    """m_k = 0.1 · 0.94^k + 0.005; μ ← (1 − m_k) μ + m_k μ_b, σ² ← (1 − m_k) σ² + m_k σ²_b · n/(n − 1)."""

    name = "decaying-momentum"

    def __init__(self, source_mean: Tensor, source_var: Tensor, start: float = 0.1, decay: float = 0.94,
                 floor: float = 0.005) -> None:
        super().__init__(source_mean, source_var)
        self.start, self.decay, self.floor = start, decay, floor
        self.k, self.mean, self.var = 0, source_mean.clone(), source_var.clone()

    def statistics(self, mean, var, n):
        m = self.start * self.decay ** self.k + self.floor
        self.k += 1
        self.mean = (1 - m) * self.mean + m * mean
        self.var = (1 - m) * self.var + m * var * n / max(n - 1, 1)
        return self.mean, self.var


RULES = {rule.name: rule for rule in (TestBatch, SourceTargetMix, RobustEMA, DecayingMomentum)}


@torch.no_grad()
def stream_logits(model: nn.Module, batches: Iterable[Tensor], rule: type[TestTimeRule], **settings) -> Tensor:
    """The model's outputs on the test ``batches`` in their order, each BN layer normalising each
    batch with ``rule``'s statistics (one rule instance per layer, built from the layer's running
    statistics and ``settings``). Everything the model carries is restored afterwards."""
    with preserved(model) as state:
        model.eval()
        for _, bn in checked_layers(model):
            layer_rule = rule(bn.running_mean.double(), bn.running_var.double(), **settings)

            def pre_hook(module: nn.Module, inputs: tuple[Tensor, ...], layer_rule=layer_rule) -> None:
                mean, var, n = batch_moments(inputs[0].double())
                use_mean, use_var = layer_rule.statistics(mean, var, n)
                module.running_mean.copy_(use_mean)  # eval-mode BN normalises with these
                module.running_var.copy_(use_var)

            state.hook(bn, pre_hook)
        return torch.cat([model(batch) for batch in batches])
