"""Orders in which a test set reaches a model that uses test batches (prediction-time BN and the
test-time estimators): the i.i.d. order of today, classes one after another, and label-shifted
streams after NOTE (Gong et al., NeurIPS 2022), whose Dirichlet protocol makes a batch hold few
classes, as a camera's frames or a ward's patients would.

Each function returns a permutation of ``range(len(labels))``: the stream visits every test
sample exactly once, so accuracies on different streams are over the same samples.
"""

from __future__ import annotations

import numpy as np

STREAMS = ("iid", "class-sorted", "dirichlet")
DIRICHLET_CHUNKS = 100  # time chunks the classes are spread over (NOTE: a few hundred on CIFAR)


def iid(labels: np.ndarray, seed: int) -> np.ndarray:
    """A uniformly random order."""
    return np.random.default_rng(seed).permutation(len(labels))


def class_sorted(labels: np.ndarray, seed: int) -> np.ndarray:
    """Class 0's samples, then class 1's, …; random order within a class."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(np.flatnonzero(labels == k)) for k in np.unique(labels)])


def dirichlet(labels: np.ndarray, seed: int, alpha: float = 0.1, chunks: int = DIRICHLET_CHUNKS) -> np.ndarray:
    """NOTE's label-shifted stream: each class's samples are spread over ``chunks`` consecutive
    time chunks in proportions drawn from Dirichlet(α, …, α); the stream is the chunks in order,
    each shuffled. Small α puts a class in few chunks (α = 0.1, NOTE's default, gives batches of one
    or two classes); large α approaches the i.i.d. order."""
    if not alpha > 0:
        raise ValueError(f"alpha: {alpha!r}, but a Dirichlet concentration must be > 0")
    if chunks < 1:
        raise ValueError(f"chunks: {chunks!r}, but a stream needs at least one chunk")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(chunks)]
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        cuts = (np.cumsum(rng.dirichlet(np.full(chunks, alpha))) * len(members)).astype(int)[:-1]
        for chunk, piece in zip(parts, np.split(members, cuts)):
            chunk.append(piece)
    return np.concatenate([rng.permutation(np.concatenate(chunk)) for chunk in parts if chunk])


def stream(order: str, labels: np.ndarray, seed: int, alpha: float = 0.1) -> np.ndarray:
    """The test order ``order`` (one of ``STREAMS``) of ``labels``, seeded."""
    if order == "iid":
        return iid(labels, seed)
    if order == "class-sorted":
        return class_sorted(labels, seed)
    if order == "dirichlet":
        return dirichlet(labels, seed, alpha)
    raise ValueError(f"unknown test order {order!r}; choose one of {STREAMS}")
