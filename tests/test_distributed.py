"""Statistics under torch.distributed (issue #26, item 5): two real processes on the gloo backend,
CPU, ranks with unequal batch sizes and unequal numbers of batches. Every rank must end with the
same statistics, to the bit, and they must be the exact population statistics of all ranks' BN
inputs together, computed here in one process, in float64, from forward hooks (not by dmbn)."""

from __future__ import annotations

import gc
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

import dmbn
from dmbn import distributed, estimators
from dmbn.bank import EstimatorBank
from dmbn.esm import recalibrated_statistics
from dmbn.estimators import TrainingContext, precise_statistics

WORLD = 2
BATCH_SIZE = (7, 13)      # per rank
PRECISE_BATCHES = (3, 2)  # per rank: PreciseBN sees 21 and 26 samples
ESM_SAMPLES = (11, 17)    # per rank, in chunks of ESM_CHUNK: 3 and 4 chunks
ESM_CHUNK = 5
STEPS = 3                 # the bank's training steps (DDP steps in lockstep)
MOMENT_BETAS = (0.3, 0.8)


def convnet(dtype: torch.dtype) -> nn.Module:
    """BN2d over 6x6 and 4x4 positions, then BN1d: counts per channel differ from layer to layer."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(),
        nn.Linear(5 * 4 * 4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).to(dtype)


def rank_data(rank: int, dtype: torch.dtype) -> dict[str, list[Tensor] | Tensor]:
    """Rank ``rank``'s own data: PreciseBN batches, the bank's training batches, an ESM set."""
    generator = torch.Generator().manual_seed(100 + rank)

    def images(n: int) -> Tensor:  # a mean far from 0, so that pooling errors would show
        return (torch.randn(n, 3, 8, 8, generator=generator) * 2 + 3).to(dtype)

    size = BATCH_SIZE[rank]
    return {"precise": [images(size) for _ in range(PRECISE_BATCHES[rank])],
            "steps": [images(size) for _ in range(STEPS)],
            "esm": images(ESM_SAMPLES[rank])}


# -- what each rank computes -----------------------------------------------------------------------

def _rank(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)  # two processes on a shared machine
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                            timeout=timedelta(minutes=10))
    try:
        exact = rank_data(rank, torch.float64)
        results = {"precise": precise_statistics(convnet(torch.float64), exact["precise"]),
                   "recalibrated": recalibrated_statistics(convnet(torch.float64), exact["esm"], ESM_CHUNK),
                   "bank": _bank_under_ddp(rank_data(rank, torch.float32)),
                   **_recalibrate_with_a_loader(exact),
                   "precise-input-moments": _precise_from_input_moments(exact)}
        torch.save(results, Path(out) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        # DDP's reducer sits in reference cycles and holds the process group: collect it now, so
        # that the group is torn down here and not by the interpreter's finalisation.
        gc.collect()
        dist.destroy_process_group()
    _exit_without_finalisation()


def _exit_without_finalisation() -> None:
    """End a rank that finished cleanly without Python's finalisation. Gloo's worker threads can
    still be alive while the interpreter is torn down, and then the process dies with SIGABRT
    ("terminate called without an active exception") after its results were written: the CI run
    of fcab8e9 failed so, rarely and not reproducibly (0 of 30 runs here; pytorch/pytorch#179291
    describes the race). The results file and the barrier came first, so nothing is lost; a rank
    that raised never gets here and fails the test through ``mp.spawn`` as before."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _recalibrate_with_a_loader(exact: dict) -> dict[str, tuple[Tensor, Tensor]]:
    """``dmbn.recalibrate`` on this rank's own loader of ``(x, y)`` batches (a generator; the
    any-iterable paths, not the workflow's tensor path): PreciseBN on the PreciseBN batches,
    recalibration on the ESM set in batches of ESM_CHUNK, each loaded into the model and flattened."""
    results = {}
    for estimator, batches in (("precise", exact["precise"]), ("recalibrated", exact["esm"].split(ESM_CHUNK))):
        model = convnet(torch.float64)
        loader = ((x, torch.zeros(len(x), dtype=torch.long)) for x in batches)
        statistics = dmbn.recalibrate(model, loader, estimator=estimator, batches=None)
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert all(torch.equal(bn.running_mean, statistics[name][0]) for name, bn in zip(statistics, bns))
        results[f"recalibrate-{estimator}"] = (torch.cat([m for m, _ in statistics.values()]),
                                               torch.cat([v for _, v in statistics.values()]))
    return results


def _precise_from_input_moments(exact: dict) -> tuple[Tensor, Tensor]:
    """PreciseBN as it runs for a syncing ``SyncBatchNorm`` (whose buffers hold the global batch's
    statistics): every layer's batch moments from its local input, pooled over the ranks. Plain BN
    layers stand in (``SyncBatchNorm`` refuses CPU inputs under a process group)."""
    real = distributed.syncs_batch_statistics
    distributed.syncs_batch_statistics = lambda bn: True
    try:
        return estimators.precise_statistics(convnet(torch.float64), exact["precise"])
    finally:
        distributed.syncs_batch_statistics = real


def _bank_under_ddp(data: dict) -> dict[str, tuple[Tensor, Tensor]]:
    """A user's DDP loop (default ``broadcast_buffers=True``) with the bank riding along; the
    weights stay fixed (no optimiser step) so that one process can replay the forwards."""
    model = convnet(torch.float32)
    bank = EstimatorBank(model, betas=MOMENT_BETAS, estimators=("moment", "precise", "recalibrated"))
    ddp = DistributedDataParallel(model)
    bank.start_epoch()
    model.train()
    for x in data["steps"]:
        ddp(x).square().mean().backward()
        bank.observe()
    bank.finish_training(TrainingContext(model, lambda: data["precise"], data["esm"], ESM_CHUNK))
    exported = bank.export()
    return {name: exported.of(name) for name in exported.names}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Both ranks' results (spawned processes, joined; a rank's exception fails the test)."""
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank, args=(str(folder / "store"), str(folder)), nprocs=WORLD, join=True)
    return [torch.load(folder / f"rank{r}.pt") for r in range(WORLD)]


# -- the single-process reference -------------------------------------------------------------------

def bn_inputs(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Each BN layer's input to one forward of ``x``, as float64 ``[channels, values]``."""
    captured: list[Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda _, args: captured.append(args[0].detach()))
             for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return [t.transpose(0, 1).reshape(t.shape[1], -1).double() for t in captured]


def together(per_forward: list[list[Tensor]]) -> list[Tensor]:
    """Per layer, the values of several forwards side by side."""
    return [torch.cat(layer, dim=1) for layer in zip(*per_forward)]


def population(values: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Flat mean and unbiased variance of every layer's values."""
    return (torch.cat([v.mean(dim=1) for v in values]), torch.cat([v.var(dim=1) for v in values]))


def precise_reference(dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Train-mode forwards of every rank's batches, one after another, in one process."""
    model = convnet(dtype).train()
    batches = [b for r in range(WORLD) for b in rank_data(r, dtype)["precise"]]
    return population(together([bn_inputs(model, b) for b in batches]))


def recalibrated_reference(dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Layer by layer on the ranks' ESM sets concatenated: eval mode, upstream layers already set."""
    model = convnet(dtype).eval()
    x = torch.cat([rank_data(r, dtype)["esm"] for r in range(WORLD)])
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for i, bn in enumerate(layers):
        values = bn_inputs(model, x)[i]
        bn.running_mean.copy_(values.mean(dim=1))
        bn.running_var.copy_(values.var(dim=1))
    return (torch.cat([bn.running_mean for bn in layers]).double(),
            torch.cat([bn.running_var for bn in layers]).double())


def moment_reference(beta: float) -> tuple[Tensor, Tensor]:
    """dmbn's documented moment EMA (docs/ESTIMATORS.md) over the global batches: step t's batch
    is every rank's t-th batch together, a ← (1−β)a + β E[x], s ← (1−β)s + β E[x²] from a = 0,
    s = 1, and σ² = (s − a²) / (1 − β/((2−β)N)) with N the global batch's values per channel."""
    model = convnet(torch.float32).train()
    steps = [together([bn_inputs(model, rank_data(r, torch.float32)["steps"][t]) for r in range(WORLD)])
             for t in range(STEPS)]
    a = s = None
    for values in steps:
        mean = torch.cat([v.mean(dim=1) for v in values])
        square = torch.cat([v.square().mean(dim=1) for v in values])
        a = beta * mean if a is None else (1 - beta) * a + beta * mean
        s = (1 - beta) + beta * square if s is None else (1 - beta) * s + beta * square
    count = torch.cat([torch.full((v.shape[0],), float(v.shape[1]), dtype=torch.float64) for v in steps[-1]])
    return a, (s - a.square()) / (1 - beta / ((2 - beta) * count))


# -- the tests -------------------------------------------------------------------------------------

def assert_same_on_every_rank(ranks: list[dict], key: str) -> None:
    """Bitwise: the same (mean, var) of every row on every rank."""
    rows = [r[key] if isinstance(r[key], dict) else {key: r[key]} for r in ranks]
    for other in rows[1:]:
        assert other.keys() == rows[0].keys()
        for name, (mean, var) in rows[0].items():
            assert torch.equal(mean, other[name][0]) and torch.equal(var, other[name][1]), \
                f"{name} differs between ranks"


def test_precise_bn_pools_every_ranks_batches_weighted_by_their_size(ranks):
    assert_same_on_every_rank(ranks, "precise")
    torch.testing.assert_close(ranks[0]["precise"], precise_reference(torch.float64), rtol=1e-10, atol=1e-12)


def test_recalibrate_pools_every_ranks_loader(ranks):
    """The one-line API with each rank's own loader (unequal batch sizes and numbers of batches)
    ends with the same statistics on every rank: those of one process over all ranks' data."""
    for estimator, reference in (("precise", precise_reference), ("recalibrated", recalibrated_reference)):
        key = f"recalibrate-{estimator}"
        assert_same_on_every_rank(ranks, key)
        torch.testing.assert_close(ranks[0][key], reference(torch.float64), rtol=1e-10, atol=1e-12)


def test_precise_bn_from_the_local_inputs_of_syncing_layers(ranks):
    """The path for a syncing SyncBatchNorm (moments of the rank's own input, then pooled)."""
    assert_same_on_every_rank(ranks, "precise-input-moments")
    torch.testing.assert_close(ranks[0]["precise-input-moments"], precise_reference(torch.float64),
                               rtol=1e-10, atol=1e-12)


def test_recalibration_pools_every_ranks_esm_set(ranks):
    assert_same_on_every_rank(ranks, "recalibrated")
    torch.testing.assert_close(ranks[0]["recalibrated"], recalibrated_reference(torch.float64),
                               rtol=1e-10, atol=1e-12)


def test_the_banks_pooling_estimators_agree_across_ranks_under_ddp(ranks):
    """The bank inside a DDP loop: the moment EMAs follow the global batch (step t's batches of
    every rank together, 7 + 13 samples), PreciseBN and recalibration every rank's data."""
    assert_same_on_every_rank(ranks, "bank")
    bank = ranks[0]["bank"]
    expected = {f"moment-{b}": moment_reference(b) for b in MOMENT_BETAS}
    expected |= {"precise": precise_reference(torch.float32), "recalibrated": recalibrated_reference(torch.float32)}
    assert sorted(bank) == sorted(expected)
    for name, (mean, var) in expected.items():
        torch.testing.assert_close(bank[name], (mean.float(), var.float()), rtol=1e-5, atol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")
