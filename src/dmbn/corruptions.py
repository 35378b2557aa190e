"""Corrupted test images for 28x28 grayscale data sets: the distribution shifts an estimator's
statistics meet at test time.

Names and the five severities' parameters follow MNIST-C (Mu & Gilmer 2019,
google-research/mnist-c, ``corruptions.py``), which scales CIFAR-10-C's scheme (Hendrycks &
Dietterich 2019, hendrycks/robustness ``make_cifar_c.py``) to 28x28 digits. The implementations
are this project's, with numpy, scipy and torchvision only; where they differ from MNIST-C's:

* ``motion_blur``: a normalised line kernel (length ``2 * radius + 1``, Gaussian weights of
  ``sigma`` along it, one random angle in ±45° per image) convolved with scipy, instead of
  ImageMagick's ``MotionBlurImage``;
* ``brightness``: ``x + c``, clipped. For a gray image MNIST-C's RGB → HSV → V + c → gray round
  trip is the same up to the RGB → gray weights;
* ``pixelate``: torch's area interpolation down to ``int(28 c)`` pixels and back up (PIL's BOX
  resize, both ways);
* ``jpeg_compression``: ``torchvision.io`` JPEG at the quality instead of PIL's;
* ``elastic_transform``: the random affine from three jittered points solved with numpy and
  applied with scipy (MNIST-C: OpenCV), then MNIST-C's smoothed displacement field;
* ``rotate``, ``shear``, ``scale``, ``translate``: scipy's affine transform about the image
  centre (MNIST-C: scikit-image's ``warp``), bilinear, zero outside.

Every corruption is a function ``(images, parameter, rng) -> images`` on uint8 arrays
``[N, 28, 28]``; ``corrupt`` draws its generator from (seed, corruption, severity), so a set is
the same bytes on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import ndimage

SEVERITIES = (1, 2, 3, 4, 5)
CENTRE = 13.5  # of a 28x28 image, in pixel coordinates


def _unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float64) / 255.0


def _uint8(images: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


# -- noise -----------------------------------------------------------------------------------------

def gaussian_noise(images: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """x + N(0, scale²) on [0, 1]."""
    x = _unit(images)
    return _uint8(x + rng.normal(scale=scale, size=x.shape))


def shot_noise(images: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson(x · photons) / photons: fewer photons, more noise."""
    return _uint8(rng.poisson(_unit(images) * photons) / photons)


def speckle_noise(images: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """x + x · N(0, scale²) on [0, 1]: noise that grows with the intensity (dark pixels stay dark)."""
    x = _unit(images)
    return _uint8(x + x * rng.normal(scale=scale, size=x.shape))


def impulse_noise(images: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: a fraction ``amount`` of pixels set to 0 or 1, half each."""
    x = _unit(images)
    hit = rng.random(x.shape) < amount
    x[hit] = rng.random(int(hit.sum())) < 0.5
    return _uint8(x)


# -- blur ------------------------------------------------------------------------------------------

def gaussian_blur(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _uint8(ndimage.gaussian_filter(_unit(images), sigma=(0, sigma, sigma), mode="nearest"))


def glass_blur(images: np.ndarray, parameter: tuple[float, int, int], rng: np.random.Generator) -> np.ndarray:
    """Blur, then locally shuffle pixels (each pixel, with probability ½, swapped with one at most
    ``delta`` away, ``iterations`` sweeps), then blur again."""
    sigma, delta, iterations = parameter
    x = _uint8(ndimage.gaussian_filter(_unit(images), sigma=(0, sigma, sigma), mode="nearest"))
    n, size = len(x), x.shape[1]
    rows = np.arange(n)
    for _ in range(iterations):
        for h in range(size - delta, delta, -1):
            for w in range(size - delta, delta, -1):  # every image at once, each its own shift
                swap = rng.random(n) < 0.5
                dy, dx = rng.integers(-delta, delta, size=(2, n))
                r, hp, wp = rows[swap], (h + dy)[swap], (w + dx)[swap]
                x[r, h, w], x[r, hp, wp] = x[r, hp, wp], x[r, h, w].copy()
    return _uint8(ndimage.gaussian_filter(_unit(x), sigma=(0, sigma, sigma), mode="nearest"))


def motion_kernel(radius: int, sigma: float, angle: float) -> np.ndarray:
    """A normalised line kernel through the centre at ``angle`` degrees, Gaussian weights along it."""
    size = 2 * radius + 1
    kernel = np.zeros((size, size))
    steps = np.linspace(-radius, radius, 4 * size)
    weights = np.exp(-0.5 * (steps / sigma) ** 2)
    theta = np.deg2rad(angle)
    rows = np.rint(radius - steps * np.sin(theta)).astype(int)
    cols = np.rint(radius + steps * np.cos(theta)).astype(int)
    np.add.at(kernel, (rows, cols), weights)
    return kernel / kernel.sum()


def motion_blur(images: np.ndarray, parameter: tuple[int, float], rng: np.random.Generator) -> np.ndarray:
    radius, sigma = parameter
    x = _unit(images)
    angles = rng.uniform(-45, 45, size=len(x))
    return _uint8(np.stack([ndimage.convolve(image, motion_kernel(radius, sigma, a), mode="constant")
                            for image, a in zip(x, angles)]))


# -- digital ---------------------------------------------------------------------------------------

def contrast(images: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Each image pulled towards its own mean: (x − m) · factor + m."""
    x = _unit(images)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return _uint8((x - mean) * factor + mean)


def brightness(images: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    return _uint8(_unit(images) + shift)


def pixelate(images: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Box-average down to ``int(28 · factor)`` pixels a side and box back up (PIL's BOX resize
    both ways: torch's ``area`` mode)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(_unit(images))[:, None]
    small = F.interpolate(x, size=int(images.shape[1] * factor), mode="area")
    return _uint8(F.interpolate(small, size=images.shape[1:], mode="area")[:, 0].numpy())


def jpeg_compression(images: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    import warnings

    import torch
    from torchvision.io import decode_jpeg, encode_jpeg

    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs for TorchCodec's; they
        warnings.simplefilter("ignore", DeprecationWarning)  # work, and the output is checked by test
        return np.stack([decode_jpeg(encode_jpeg(torch.from_numpy(image)[None], quality=quality))[0].numpy()
                         for image in images])


# -- geometry --------------------------------------------------------------------------------------

def _about_centre(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Each image under its own 2x2 map (output → input coordinates) about the centre."""
    x = _unit(images)
    centre = np.array([CENTRE, CENTRE])
    return _uint8(np.stack([ndimage.affine_transform(image, m, offset=centre - m @ centre, order=1, mode="constant")
                            for image, m in zip(x, matrices)]))


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=n)


def rotate(images: np.ndarray, radians: float, rng: np.random.Generator) -> np.ndarray:
    """A rotation by ±``radians`` (direction drawn per image)."""
    angles = radians * _signs(rng, len(images))
    return _about_centre(images, np.array([[[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]] for a in angles]))


def shear(images: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """A horizontal shear by ±``amount`` (direction drawn per image)."""
    return _about_centre(images, np.array([[[1.0, 0.0], [s, 1.0]] for s in amount * _signs(rng, len(images))]))


def scale(images: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """The digit shrunk: output pixel p reads input pixel centre + ``factor`` · (p − centre)."""
    return _about_centre(images, np.repeat(factor * np.eye(2)[None], len(images), axis=0))


def translate(images: np.ndarray, pixels: int, rng: np.random.Generator) -> np.ndarray:
    """A shift by ``pixels`` along each axis, each sign drawn per image; zero fills."""
    out = np.zeros_like(images)
    size = images.shape[1]
    for i, (dy, dx) in enumerate(pixels * np.stack([_signs(rng, len(images)), _signs(rng, len(images))], 1).astype(int)):
        out[i, max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)] = \
            images[i, max(-dy, 0):size + min(-dy, 0), max(-dx, 0):size + min(-dx, 0)]
    return out


def elastic_transform(images: np.ndarray, parameter: tuple[float, float, float],
                      rng: np.random.Generator) -> np.ndarray:
    """A small random affine (three points jittered by ±``jitter``), then a displacement field of
    uniform noise smoothed by ``smooth`` and scaled by ``alpha``."""
    alpha, smooth, jitter = parameter
    x = _unit(images)
    size = x.shape[1]
    centre, half = size // 2, size // 3
    points = np.array([[centre + half, centre + half], [centre + half, centre - half],
                       [centre - half, centre - half]], dtype=np.float64)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    out = []
    for image in x:
        moved = points + rng.uniform(-jitter, jitter, size=points.shape)
        # output -> input coordinates: solve [moved, 1] @ A = points for the 3x2 affine A
        solution = np.linalg.solve(np.c_[moved, np.ones(3)], points)
        warped = ndimage.affine_transform(image, solution[:2].T, offset=solution[2], order=1, mode="constant")
        dy, dx = (ndimage.gaussian_filter(rng.uniform(-1, 1, size=(size, size)), smooth, mode="reflect",
                                          truncate=3) * alpha for _ in range(2))
        out.append(ndimage.map_coordinates(warped, [rows + dy, cols + dx], order=1, mode="constant"))
    return _uint8(np.stack(out))


# -- the table -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Corruption:
    """One corruption: its function and its parameter at severities 1-5 (MNIST-C's values)."""

    function: Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]
    parameters: tuple


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": Corruption(gaussian_noise, (0.08, 0.12, 0.18, 0.26, 0.38)),
    "shot_noise": Corruption(shot_noise, (60, 25, 12, 5, 3)),
    "impulse_noise": Corruption(impulse_noise, (0.03, 0.06, 0.09, 0.17, 0.27)),
    "gaussian_blur": Corruption(gaussian_blur, (1, 2, 3, 4, 6)),
    "glass_blur": Corruption(glass_blur, ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))),
    "motion_blur": Corruption(motion_blur, ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))),
    "contrast": Corruption(contrast, (0.4, 0.3, 0.2, 0.1, 0.05)),
    "brightness": Corruption(brightness, (0.1, 0.2, 0.3, 0.4, 0.5)),
    "pixelate": Corruption(pixelate, (0.6, 0.5, 0.4, 0.3, 0.25)),
    "jpeg_compression": Corruption(jpeg_compression, (25, 18, 15, 10, 7)),
    "elastic_transform": Corruption(elastic_transform, (
        (28 * 2, 28 * 0.7, 28 * 0.1), (28 * 2, 28 * 0.08, 28 * 0.2), (28 * 0.05, 28 * 0.01, 28 * 0.02),
        (28 * 0.07, 28 * 0.01, 28 * 0.02), (28 * 0.12, 28 * 0.01, 28 * 0.02))),
    "rotate": Corruption(rotate, (0.2, 0.4, 0.6, 0.8, 1.0)),
    "shear": Corruption(shear, (0.2, 0.4, 0.6, 0.8, 1.0)),
    "scale": Corruption(scale, (1 / 0.9, 1 / 0.8, 1 / 0.7, 1 / 0.6, 1 / 0.5)),
    "translate": Corruption(translate, (1, 2, 3, 4, 5)),
    # appended, never inserted: a set's random draws depend on its corruption's place in this table
    "speckle_noise": Corruption(speckle_noise, (0.15, 0.2, 0.35, 0.45, 0.6)),
}


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``images`` (uint8 ``[N, 28, 28]``) under corruption ``name`` at ``severity`` (1-5); the
    random draws come from (seed, corruption, severity), so the result is the same every time."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {sorted(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} of {name!r} is not one of {SEVERITIES}")
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 images [N, H, W], got {images.dtype} {images.shape}")
    spec = CORRUPTIONS[name]
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name), severity])
    return spec.function(images.copy(), spec.parameters[severity - 1], rng)
