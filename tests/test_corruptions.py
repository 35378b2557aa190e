"""Corrupted test sets (distribution shift): every corruption is deterministic for its seed,
keeps the images' shape and type, grows with severity where its parameter says it should, and
matches a hand computation where one is short (contrast, brightness, translate, pixelate, the
noise levels). Parameters are MNIST-C's (google-research/mnist-c, corruptions.py), checked here
against that table as written there."""

from __future__ import annotations

import numpy as np
import pytest

from dmbn.corruptions import CORRUPTIONS, SEVERITIES, corrupt, motion_kernel


def digits(n: int = 24, seed: int = 0) -> np.ndarray:
    """Digit-like uint8 images: a bright blob on black, at varied places, plus a mid-gray one."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:28, :28]
    images = []
    for _ in range(n - 1):
        r, c = rng.uniform(9, 19, size=2)
        images.append(255 * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * rng.uniform(2, 4) ** 2)))
    images.append(np.full((28, 28), 128.0))
    return np.rint(np.stack(images)).astype(np.uint8)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_the_table_has_mnist_cs_names_and_five_severities_each():
    assert len(CORRUPTIONS) >= 10
    assert {"gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "glass_blur", "motion_blur",
            "contrast", "brightness", "pixelate", "jpeg_compression", "elastic_transform", "rotate", "shear",
            "scale", "translate"} <= set(CORRUPTIONS)
    assert all(len(c.parameters) == len(SEVERITIES) == 5 for c in CORRUPTIONS.values())
    # a few rows as MNIST-C's corruptions.py writes them
    assert CORRUPTIONS["shot_noise"].parameters == (60, 25, 12, 5, 3)
    assert CORRUPTIONS["jpeg_compression"].parameters == (25, 18, 15, 10, 7)
    assert CORRUPTIONS["glass_blur"].parameters[2] == (1, 2, 3)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_every_corruption_is_deterministic_shape_keeping_and_changes_the_images(name):
    clean = digits()
    first, again = corrupt(clean, name, 3, seed=7), corrupt(clean, name, 3, seed=7)
    assert first.dtype == np.uint8 and first.shape == clean.shape
    assert np.array_equal(first, again)  # same seed, same bytes
    assert distance(first, clean) > 0.5
    assert np.array_equal(clean, digits())  # the input is left as it was


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur",
                                  "elastic_transform", "rotate", "shear", "translate"])
def test_random_corruptions_differ_between_seeds(name):
    clean = digits()
    assert not np.array_equal(corrupt(clean, name, 3, seed=1), corrupt(clean, name, 3, seed=2))


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "motion_blur",
                                  "contrast", "brightness", "rotate", "shear", "scale", "translate"])
def test_a_higher_severity_moves_the_images_further(name):
    clean = digits()
    moved = [distance(corrupt(clean, name, s), clean) for s in SEVERITIES]
    assert moved == sorted(moved) and moved[-1] > moved[0], moved


@pytest.mark.parametrize("name, stronger, weaker", [("pixelate", 5, 1), ("jpeg_compression", 5, 1),
                                                   ("glass_blur", 5, 1), ("elastic_transform", 1, 3)])
def test_where_the_scale_is_not_monotonic_its_ends_still_order(name, stronger, weaker):
    """MNIST-C's scale is not monotonic step by step for these: pixelate's 0.6 resamples 28 pixels
    to 16 unevenly, 0.5 evenly; elastic's first two steps displace most (alpha 56 against 1.4-3.4)."""
    clean = digits()
    assert distance(corrupt(clean, name, stronger), clean) > distance(corrupt(clean, name, weaker), clean)


def test_contrast_and_brightness_by_hand():
    image = np.array([[[0, 100], [200, 255]]], dtype=np.uint8)
    mean = image.mean() / 255
    expected = np.rint(np.clip((image / 255 - mean) * 0.4 + mean, 0, 1) * 255)  # severity 1: factor 0.4
    assert np.array_equal(corrupt(image, "contrast", 1), expected)
    assert corrupt(image, "brightness", 5).tolist() == [[[128, 227], [255, 255]]]  # (x/255 + 0.5) · 255,
    # clipped: 127.5 and 227.49999… round to 128 and 227


def test_translate_moves_by_whole_pixels_and_fills_with_black():
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    image[0, 10, 12] = 200
    out = corrupt(image, "translate", 2)  # 2 px along each axis, signs drawn
    (r,), (c,) = np.nonzero(out[0])
    assert abs(r - 10) == 2 and abs(c - 12) == 2 and out.sum() == 200


def test_pixelate_is_block_averages_at_half_size():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(1, 28, 28)).astype(np.uint8)
    out = corrupt(image, "pixelate", 2).astype(float)  # factor 0.5: 14x14 blocks of 2x2
    blocks = np.kron(image[0].reshape(14, 2, 14, 2).astype(float).mean(axis=(1, 3)), np.ones((2, 2)))
    assert np.abs(out[0] - blocks).max() <= 0.5 + 1e-9  # each pixel its block's mean, rounded
    assert np.array_equal(out[0], np.kron(out[0, ::2, ::2], np.ones((2, 2))))  # constant on each block


def test_noise_levels_are_the_tables():
    gray = np.full((200, 28, 28), 128, dtype=np.uint8)
    noisy = corrupt(gray, "gaussian_noise", 1).astype(float) / 255 - 128 / 255
    assert noisy.std() == pytest.approx(0.08, rel=0.03)  # N(0, 0.08²), no clipping at mid-gray
    hit = corrupt(gray, "impulse_noise", 5) != 128
    assert hit.mean() == pytest.approx(0.27, abs=0.01)  # salt and pepper on 27 % of pixels
    shot = corrupt(gray, "shot_noise", 1).astype(float) / 255  # 60 photons: no clipping at 1
    assert shot.mean() == pytest.approx(128 / 255, abs=0.005)  # Poisson keeps the mean
    assert shot.std() == pytest.approx(np.sqrt(128 / 255 / 60), rel=0.05)  # variance x / photons
    speckle = corrupt(gray, "speckle_noise", 1).astype(float) / 255 - 128 / 255
    assert speckle.mean() == pytest.approx(0.0, abs=0.002)
    assert speckle.std() == pytest.approx(128 / 255 * 0.15, rel=0.03)  # x · N(0, 0.15²) at x = 128/255
    black = np.zeros((10, 28, 28), dtype=np.uint8)
    assert not corrupt(black, "speckle_noise", 5).any()  # multiplicative: a black pixel stays black


def test_the_motion_kernel_is_a_normalised_line_at_its_angle():
    flat = motion_kernel(3, 2.0, 0.0)
    assert flat.sum() == pytest.approx(1.0) and np.count_nonzero(flat) == 7 and flat[3].sum() == pytest.approx(1.0)
    diagonal = motion_kernel(3, 2.0, 45.0)  # up and to the right: row falls as column rises
    assert {(int(r), int(c)) for r, c in zip(*np.nonzero(diagonal))} <= {(3 - k, 3 + k) for k in range(-3, 4)}
    assert diagonal.sum() == pytest.approx(1.0) and diagonal[3, 3] == diagonal.max()


@pytest.mark.parametrize("name, severity, words", [("fog", 1, "unknown corruption 'fog'"),
                                                   ("contrast", 6, "severity 6 of 'contrast'"),
                                                   ("contrast", 0, "severity 0 of 'contrast'")])
def test_an_unknown_corruption_or_severity_is_refused_naming_it(name, severity, words):
    with pytest.raises(ValueError, match=words):
        corrupt(digits(2), name, severity)
