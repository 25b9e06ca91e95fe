"""scikit-learn's handwritten digits (shipped with the package, no download), shaped for
the guide's MLP: 8x8 images upsampled to 28x28 and flattened to 784 values in [0, 1]."""
from __future__ import annotations

import numpy as np


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (n, h, w) images to (n, size, size), numpy only."""
    n, h, w = images.shape
    ys = np.linspace(0, h - 1, size)
    xs = np.linspace(0, w - 1, size)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[None, :, None]
    wx = (xs - x0)[None, None, :]
    top = images[:, y0][:, :, x0] * (1 - wx) + images[:, y0][:, :, x1] * wx
    bot = images[:, y1][:, :, x0] * (1 - wx) + images[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bot * wy


def load_digits(size: int = 28, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``x_train, y_train, x_test, y_test``: x float32 (n, size*size) in [0, 1], y int labels.

    The split is stratified-free but deterministic for a given seed.
    """
    from sklearn.datasets import load_digits as _sk_load

    d = _sk_load()
    images = d.images.astype(np.float64) / 16.0
    if size != 8:
        images = _upsample(images, size)
    x = images.reshape(len(images), -1).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]
