"""What a run trains on: the stratified seeded split, standardisation with the training part's
moments, batches BN can train on, and the workflow's files read back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmbn.data import Processed, load_run_data, regime_data, stratified_split
from dmbn.models import build_model
from dmbn.train import TrainConfig, epoch_batches, train_run

from conftest import tiny_data

COUNTS = {0: 500, 1: 300, 2: 150, 3: 37}  # imbalanced, one class small


def labels() -> torch.Tensor:
    y = torch.cat([torch.full((n,), c) for c, n in COUNTS.items()])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]


@pytest.mark.parametrize("seed", range(5))
def test_split_keeps_every_class_proportion_within_one_sample(seed):
    y = labels()
    train, val = stratified_split(y, 0.2, seed)
    assert sorted(train.tolist() + val.tolist()) == list(range(len(y)))  # a partition
    assert train.tolist() == sorted(train.tolist()) and val.tolist() == sorted(val.tolist())
    assert len(val) == pytest.approx(0.2 * len(y), abs=1)
    for c, n in COUNTS.items():
        assert abs(int((y[val] == c).sum()) - 0.2 * n) <= 1, c


def test_split_is_seeded():
    y = labels()
    first = stratified_split(y, 0.2, 7)
    again = stratified_split(y, 0.2, 7)
    other = stratified_split(y, 0.2, 8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])


def processed(seed: int = 0) -> Processed:
    """Three-channel uint8 images whose training, validation and test parts have different moments."""
    g = torch.Generator().manual_seed(seed)

    def images(n, low, high):
        return torch.randint(low, high, (n, 3, 4, 4), generator=g).to(torch.uint8)

    x_train = images(100, 0, 120)
    x_train[:, 1] += 100  # per-channel moments differ
    y_train = torch.arange(100) % 4
    return Processed(x_train, y_train, images(30, 50, 250), torch.arange(30) % 4, num_classes=4)


def numpy_moments(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    x = images.numpy().astype(np.float64) / 255
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3), ddof=1)


def standardised(images: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (images.numpy().astype(np.float64) / 255 - mean[None, :, None, None]) / std[None, :, None, None]


@pytest.mark.parametrize("regime", ["mini", "full-heldout", "full"])
def test_every_part_is_standardised_with_the_training_parts_moments(regime):
    data = processed()
    train, val = stratified_split(data.y_train, 0.2, 0)
    run = regime_data(data, regime, train, val)
    if regime == "full":  # the thesis's full batch trains, measures ESM and tests on the test set
        trained_on, esm_set = data.x_test, data.x_test
        assert torch.equal(run.y_train, data.y_test) and torch.equal(run.y_esm, data.y_test)
    else:
        trained_on, esm_set = data.x_train[train], data.x_train[val]
        assert torch.equal(run.y_train, data.y_train[train]) and torch.equal(run.y_esm, data.y_train[val])
    mean, std = numpy_moments(trained_on)
    for got, raw in ((run.x_train, trained_on), (run.x_esm, esm_set), (run.x_test, data.x_test)):
        np.testing.assert_allclose(got.numpy(), standardised(raw, mean, std), rtol=0, atol=2e-5)
    assert torch.equal(run.y_test, data.y_test) and run.num_classes == 4


def test_an_unknown_regime_is_named():
    data = processed()
    with pytest.raises(ValueError, match="'half'.*full"):
        regime_data(data, "half", torch.arange(80), torch.arange(80, 100))


def test_load_run_data_reads_the_workflows_tensor_and_split_files(tmp_path):
    data = processed(1)
    data.save(tmp_path / "tensors.pt")
    train, val = stratified_split(data.y_train, 0.2, 3)
    torch.save({"train": train, "validation": val}, tmp_path / "split.pt")  # as workflow/scripts/split.py
    for regime in ("mini", "full"):
        loaded = load_run_data(tmp_path / "tensors.pt", tmp_path / "split.pt", regime)
        direct = regime_data(data, regime, train, val)
        for name, value in direct.__dict__.items():
            assert (torch.equal(value, getattr(loaded, name)) if isinstance(value, torch.Tensor)
                    else value == getattr(loaded, name)), name


# -- batches -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, size, expected", [
    (81, 40, [40, 40]),        # a trailing batch of one is dropped
    (82, 40, [40, 40, 2]),     # two samples can train BN
    (80, 40, [40, 40]),
    (7, None, [7]),            # full batch
    (30, 100, [30]),           # one batch smaller than the batch size
])
def test_epoch_batches_shuffle_and_drop_only_a_trailing_single_sample(n, size, expected):
    batches = epoch_batches(n, size, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert [len(b) for b in batches] == expected
    seen = torch.cat(batches).tolist()
    assert len(set(seen)) == len(seen) == sum(expected) and set(seen) <= set(range(n))
    again = epoch_batches(n, size, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))  # the run's generator decides
    if n > 2:
        assert seen != sorted(seen)  # shuffled


def test_no_one_sample_batch_reaches_batchnorm_in_training():
    data = tiny_data(n_train=81)  # 40 + 40 + 1 per epoch
    model = build_model("mlp", data.input_shape, data.num_classes, depth=2, width=8)
    sizes = []
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])) if m.training else None)
    train_run(model, data, TrainConfig(epochs=2, batch_size=40, precise_batches=3, seed=1))
    # two BN layers: per epoch 2 steps, then 3 PreciseBN batches at the end
    assert sorted(set(sizes)) == [40] and len(sizes) == 2 * (2 * 2 + 3)
