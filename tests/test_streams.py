"""Test orders for the rows that use test batches: every one visits each sample once, is the same
for its seed, and the label-shifted ones concentrate classes in batches as they should, measured
here by the mean share of a batch's most common class."""

from __future__ import annotations

import numpy as np
import pytest

from dmbn.streams import STREAMS, dirichlet, stream

LABELS = np.repeat(np.arange(10), 200)  # 2,000 test labels, 10 balanced classes


def majority_share(labels: np.ndarray, order: np.ndarray, batch: int = 100) -> float:
    """The mean over batches of the fraction of a batch taken by its most common class."""
    batches = labels[order][: len(order) // batch * batch].reshape(-1, batch)
    return float(np.mean([np.bincount(b).max() / batch for b in batches]))


@pytest.mark.parametrize("order", STREAMS)
def test_every_stream_visits_each_sample_once_and_is_seeded(order):
    first = stream(order, LABELS, seed=3)
    assert sorted(first.tolist()) == list(range(len(LABELS)))
    assert np.array_equal(first, stream(order, LABELS, seed=3))
    assert not np.array_equal(first, stream(order, LABELS, seed=4))


def test_class_sorted_is_one_class_after_another():
    order = stream("class-sorted", LABELS, seed=0)
    assert (np.diff(LABELS[order]) >= 0).all()
    assert majority_share(LABELS, order) == 1.0  # batches of 100 from classes of 200


def test_dirichlet_alpha_moves_from_label_shift_to_iid():
    """Chunks of 100 samples (20 chunks of 2,000), batches of 100: the smaller α, the fewer
    classes in a batch; a large α is as mixed as the i.i.d. order (10 % per class)."""
    iid = majority_share(LABELS, stream("iid", LABELS, seed=0))
    assert iid < 0.25  # ~ 10 classes of about 10 each in a batch of 100

    def share(alpha: float) -> float:
        return float(np.mean([majority_share(LABELS, dirichlet(LABELS, seed=s, alpha=alpha, chunks=20))
                              for s in range(5)]))

    shares = [share(a) for a in (0.01, 0.1, 1.0, 1000.0)]
    assert shares == sorted(shares, reverse=True), shares
    assert shares[0] > 0.6 and shares[1] > 2 * iid  # α = 0.1 (NOTE's): a batch mostly a few classes
    assert shares[-1] < iid + 0.05


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan")])
def test_a_concentration_that_is_not_positive_is_refused_naming_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        dirichlet(LABELS, seed=0, alpha=alpha)


def test_an_unknown_order_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="unknown test order 'sorted'"):
        stream("sorted", LABELS, seed=0)
