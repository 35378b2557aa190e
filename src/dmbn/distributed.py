"""Statistics pooled over the ranks of ``torch.distributed`` (DDP), so every rank ends with the same.

Under DistributedDataParallel each rank sees its own batches, and ranks may see batches of
different sizes and different numbers of them. The estimators that pool per-batch moments
(PreciseBN, recalibration, the bank's ``moment`` EMAs) therefore sum counts, sums and centred
sums of squares over the ranks here, weighting every rank by its true number of values, as one
process would over the ranks' batches together. Each function is the identity when
``torch.distributed`` is not initialised (a single process), so the pooling points call it
unconditionally.

An all-reduce is a collective: every rank must call the same functions the same number of
times, as DDP's own gradient all-reduce requires. Every rank receives the very same reduced
tensor, so what it computes from it afterwards is bitwise identical across ranks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def active() -> bool:
    """Whether statistics are pooled over ranks: ``torch.distributed`` is initialised."""
    return dist.is_available() and dist.is_initialized()


def syncs_batch_statistics(bn: torch.nn.Module) -> bool:
    """Whether a train-mode forward of ``bn`` writes the statistics of every rank's batch together
    into its buffers: a ``SyncBatchNorm`` under a process group of more than one rank. Such
    buffers are global already; pooling them over the ranks again would count values twice."""
    if not (isinstance(bn, torch.nn.SyncBatchNorm) and active()):
        return False
    return dist.get_world_size(bn.process_group or dist.group.WORLD) > 1


def all_reduce_sums(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Each tensor summed over the ranks, by one ``all_reduce`` of them packed in float64 (one
    collective instead of one per tensor); the inputs are left untouched. Shapes must agree
    across ranks."""
    if not active():
        return tensors
    packed = torch.cat([t.double().reshape(-1) for t in tensors])
    dist.all_reduce(packed)
    parts = packed.split([t.numel() for t in tensors])
    return tuple(p.view(t.shape) for p, t in zip(parts, tensors))


def pooled_means(count: Tensor, *means: Tensor) -> tuple[Tensor, ...]:
    """(N, the count-weighted means) over the ranks: N = Σ n_r, mean = Σ n_r·mean_r / N, per channel.

    ``count`` is each rank's number of values per channel (samples × positions), ``means`` any
    per-channel averages over those values (E[x], E[x²], ...), in float64."""
    if not active():
        return (count, *means)
    count = count.double()
    total, *sums = all_reduce_sums(count, *(count * m.double() for m in means))
    return (total, *(s / total for s in sums))


def pooled_moments(count: Tensor, mean: Tensor, m2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(N, mean, M₂) of every rank's values together, from each rank's count n_r, mean m_r and
    centred sum of squares M₂,r (Chan et al.), in float64:

        N = Σ n_r,   μ = Σ n_r m_r / N,   M₂ = Σ (M₂,r + n_r (m_r − μ)²).

    Two all-reduces, the second centred on the pooled mean, so neither a large mean nor many
    values cost precision (a single reduction of raw sums of squares would cancel). A rank with
    no values passes n_r = 0 (and any finite mean and M₂) and adds nothing."""
    if not active():
        return count, mean, m2
    total, pooled_mean = pooled_means(count, mean)
    spread = m2.double() + count.double() * (mean.double() - pooled_mean).square()
    (pooled_m2,) = all_reduce_sums(spread)
    return total, pooled_mean, pooled_m2
