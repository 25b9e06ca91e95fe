"""Calibration data by input name: .npz, .npy, a folder of images, CSV, the built-in digits,
or random data when explicitly asked for (numpy only, plus Pillow for images)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgekit.errors import InputError
from edgekit.feeds import IMAGE_SUFFIXES, image_pixels, require_pillow
from edgekit.specs import TensorSpec

LABEL_COLUMNS = {"label", "labels", "y", "target", "class"}


def without_labels(arrays: Mapping[str, np.ndarray], specs: Sequence[Any]) -> dict[str, np.ndarray]:
    """Labelled data calibrates too: labels (y, or y_<output> per output) are not inputs."""
    names = {sp.name for sp in specs}
    return {k: v for k, v in arrays.items() if k in names or (k not in LABEL_COLUMNS and not k.startswith("y_"))}


@dataclass
class Calibration:
    arrays: dict[str, np.ndarray]
    description: str
    meaningful: bool = True

    @property
    def count(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])


def _draw(arrays: dict[str, np.ndarray], samples: int, seed: int) -> dict[str, np.ndarray]:
    n = next(iter(arrays.values())).shape[0]
    if n <= samples:
        return arrays
    idx = np.sort(np.random.default_rng(seed).choice(n, size=samples, replace=False))
    return {k: v[idx] for k, v in arrays.items()}


def load_calibration(source: str, specs: tuple[TensorSpec, ...], samples: int = 200, seed: int = 0) -> Calibration:
    """Calibration arrays for ``specs`` (bound by name), ``samples`` of them drawn deterministically."""
    from edgekit.feeds import bind, load_arrays, random_feeds

    if source == "random":
        arrays = random_feeds(specs, batch=samples, seed=seed)
        return Calibration(arrays, f"{samples} random samples (NOT meaningful: pass real data)", meaningful=False)
    if source == "digits":
        from edgekit.models.digits import load_digits

        if len(specs) != 1 or tuple(specs[0].shape[1:]) not in ((784,), (28, 28, 1), (28, 28), (64,), (8, 8, 1)):
            raise InputError(f"the built-in digits fit a single 784-value (or 28x28x1, 64) input; the model has {[s.shape for s in specs]}")
        size = 8 if specs[0].shape[1] in (64, 8) else 28
        x_train, _, _, _ = load_digits(size=size, seed=seed)
        arrays = {specs[0].name: x_train.reshape((-1, *specs[0].shape[1:]))}
        drawn = _draw(arrays, samples, seed)
        return Calibration(drawn, f"{len(next(iter(drawn.values())))} digits training images")
    p = Path(source)
    if not p.exists():
        raise InputError(f"calibration data {source} does not exist (pass .npz, .npy, .csv, an image folder, digits or random)")
    if p.is_dir():
        arrays, note = _image_folder(p, specs)
    elif p.suffix.lower() == ".csv":
        arrays, note = _csv(p, specs), f"CSV {p.name}"
    else:
        arrays, note = without_labels(load_arrays(source), specs), p.name
    bound = bind(_draw(arrays, samples, seed), specs, source="--calibration")
    return Calibration(bound, f"{next(iter(bound.values())).shape[0]} samples from {note}")


def _csv(p: Path, specs: tuple[TensorSpec, ...]) -> dict[str, np.ndarray]:
    if len(specs) != 1:
        raise InputError("CSV calibration data fits single-input models: use an .npz keyed by input name")
    with open(p) as fh:
        header = fh.readline().strip().split(",")
    has_header = not all(_is_number(h) for h in header)
    data = np.loadtxt(p, delimiter=",", skiprows=1 if has_header else 0, ndmin=2)
    if has_header:
        keep = [i for i, h in enumerate(header) if h.strip().lower() not in LABEL_COLUMNS]
        data = data[:, keep]
    want = int(np.prod(specs[0].shape[1:]))
    if data.shape[1] != want:
        raise InputError(f"{p} has {data.shape[1]} feature columns; the input {specs[0].name!r} takes {want}")
    return {specs[0].name: data.reshape((-1, *specs[0].shape[1:])).astype(np.float32)}


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _image_folder(p: Path, specs: tuple[TensorSpec, ...]) -> tuple[dict[str, np.ndarray], str]:
    require_pillow("image calibration data needs Pillow: pip install pillow")
    if len(specs) != 1 or len(specs[0].shape) != 4:
        raise InputError("an image folder calibrates a model with one (batch, H, W, C) input; use an .npz otherwise")
    _, h, w, c = specs[0].shape
    if h is None or w is None or c not in (1, 3, 4):
        raise InputError(f"input {specs[0].name!r} has shape {specs[0].shape}: images need fixed H, W and 1/3/4 channels")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{p} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    arr = np.stack([image_pixels(f, h, w, c)[0] for f in files])
    return {specs[0].name: arr}, f"{len(files)} images in {p.name} (resized to {w}x{h}, scaled to [0, 1])"
