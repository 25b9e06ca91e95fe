"""Input arrays bound by name: loaded from ``.npz``/``.npy`` or generated, checked against
the model's input specs (numpy only)."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from edgekit.errors import InputError, MissingDependencyError
from edgekit.specs import TensorSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
_IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # Pillow's mode for each channel count


def load_arrays(path: str) -> dict[str, np.ndarray]:
    """Arrays from ``.npz`` (one per input name) or ``.npy`` (single-input models), no pickles."""
    from edgekit.memguard import check_arrays_file
    from edgekit.safeparse import require_regular_file

    p = Path(path)
    if p.is_dir():
        raise InputError(f"inputs {path} is a directory: pass an .npz (one array per input name) or .npy file")
    require_regular_file(p, "inputs file")  # a FIFO or device would block the read forever
    with open(p, "rb") as fh:
        head = fh.read(6)
    if not (head.startswith(b"PK") or head.startswith(b"\x93NUMPY")):
        raise InputError(f"{path} is not a readable .npz/.npy file (no numpy or zip header)")
    check_arrays_file(p)  # sized from the headers, refused before any array is allocated
    try:
        if p.suffix == ".npy":
            return {"": np.load(p, allow_pickle=False)}
        with np.load(p, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                return {"": np.asarray(data)}
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(f"{path} contains pickled objects, which edgekit does not load: save plain numeric arrays") from None
        raise InputError(f"{path} is not a readable .npz/.npy file: {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path} is not a readable .npz/.npy file: {exc}") from None


def _dims_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("batch" if i == 0 and d is None else ("?" if d is None else str(d)) for i, d in enumerate(shape)) + ")"


def bind(arrays: Mapping[str, np.ndarray], specs: tuple[TensorSpec, ...], source: str = "--inputs") -> dict[str, np.ndarray]:
    """Check arrays against the model's inputs by name; cast to the input dtypes."""
    arrays = dict(arrays)
    names = [s.name for s in specs]
    if list(arrays) == [""]:
        if len(specs) != 1:
            raise InputError(f"{source}: a single .npy array cannot feed a model with inputs {names}: use an .npz keyed by name")
        arrays = {names[0]: arrays[""]}
    unknown = [k for k in arrays if k not in names]
    if unknown:
        raise InputError(f"{source}: the model has no input named {', '.join(map(repr, unknown))}; its inputs are {names}")
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputError(f"{source}: no array for input {', '.join(map(repr, missing))}; the model's inputs are {names}")
    out: dict[str, np.ndarray] = {}
    batch = None
    for s in specs:
        a = np.asarray(arrays[s.name])
        want = np.dtype(s.dtype)
        if a.dtype.kind not in "biuf":
            raise InputError(f"{source}: input {s.name!r} has dtype {a.dtype}; expected numbers ({want})")
        if want.kind in "iu" and a.dtype.kind == "f":
            if not np.all(np.mod(a, 1) == 0):
                raise InputError(f"{source}: input {s.name!r} expects integers ({want}), got non-integral floats ({a.dtype})")
        if a.ndim != len(s.shape) or any(d is not None and d != g for d, g in zip(s.shape, a.shape)):
            raise InputError(
                f"{source}: input {s.name!r} has shape {tuple(a.shape)}; the model expects {_dims_text(s.shape)}"
            )
        if batch is None:
            batch = a.shape[0]
        elif a.shape[0] != batch:
            raise InputError(f"{source}: inputs have different batch sizes ({batch} and {a.shape[0]} for {s.name!r})")
        if s.int_range is not None and a.size and (a.min() < s.int_range[0] or a.max() >= s.int_range[1]):
            raise InputError(
                f"{source}: input {s.name!r} has values in [{a.min()}, {a.max()}]; the model accepts [{s.int_range[0]}, {s.int_range[1]})"
            )
        if want.kind == "f" and a.dtype.kind == "f" and a.dtype.itemsize > want.itemsize:
            over = int(np.count_nonzero(np.isfinite(a) & (np.abs(a) > np.finfo(want).max)))
            if over:  # the cast would turn them into inf: the check would compare infinities
                raise InputError(f"{source}: input {s.name!r} has {over} value(s) beyond the {want} range "
                                 f"(|x| > {np.finfo(want).max:.3g}); the model computes in {want}")
        out[s.name] = a.astype(want, copy=False)
    return out


def parse_shapes(items: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    """``["tokens=64", "image=32,32,3"]`` -> per-input shapes without the batch dimension."""
    shapes = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            if not sep:
                raise ValueError
            shapes[name.strip()] = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise InputError(f"--shape {item!r}: expected NAME=D1,D2,... (dimensions after the batch)") from None
    return shapes


# Check sizes for dimensions the model leaves open (documented in the README, "Models").
DEFAULT_LENGTH = 16  # a variable sequence length, where the model declares no maximum
MAX_CHECK_LENGTH = 64  # a declared maximum above this is checked at this length
DEFAULT_IMAGE_SIZE = 64  # a variable image height or width


def check_dims(spec: TensorSpec, shapes: Mapping[str, tuple[int, ...]] | None = None, max_length: int | None = None,
               second: bool = False) -> tuple[int, ...]:
    """Dimensions after the batch to check ``spec`` at: ``--shape`` where given, else the
    model's own, with open ones filled (images: DEFAULT_IMAGE_SIZE; sequences: the declared
    maximum up to MAX_CHECK_LENGTH, else DEFAULT_LENGTH). ``second`` halves the filled ones:
    a second check proves that an artifact really keeps its dynamic dimensions."""
    dims = list(spec.shape[1:])
    if shapes and spec.name in shapes:
        given = tuple(shapes[spec.name])
        if len(given) != len(dims) or any(d is not None and d != g for d, g in zip(dims, given)):
            raise InputError(f"--shape {spec.name}: {given} does not fit the model's {_dims_text(spec.shape)}")
        return given
    length = min(max_length, MAX_CHECK_LENGTH) if max_length else DEFAULT_LENGTH
    image = len(spec.shape) == 4
    out = []
    for d in dims:
        if d is None:
            d = DEFAULT_IMAGE_SIZE if image else length
            if second:
                d = max(1, d // 2)
        out.append(d)
    return tuple(out)


def describe_distribution(spec: TensorSpec) -> str:
    """How ``random_feeds`` draws ``spec`` (recorded in the manifest)."""
    lo_hi = spec.int_range or (0, 10)
    if spec.role == "tokens":
        return f"token ids uniform in [{lo_hi[0]}, {lo_hi[1]}) (the vocabulary of the embedding it feeds)"
    if spec.role == "segments":
        return f"segment ids uniform in [{lo_hi[0]}, {lo_hi[1]})"
    if spec.role == "mask":
        return "padding mask: ones, then zeros (row 0 unpadded)"
    if spec.role == "scaled" and spec.value_range:
        return f"uniform in [{spec.value_range[0]:g}, {spec.value_range[1]:g}] (what its preprocessing layer expects)"
    if np.dtype(spec.dtype).kind in "iu":
        return f"integers uniform in [{lo_hi[0]}, {lo_hi[1]})"
    if np.dtype(spec.dtype).kind == "b":
        return "booleans"
    return "standard normal"


def _draw(s: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dt = np.dtype(s.dtype)
    if s.role == "mask" and len(shape) >= 2:
        n = shape[1]
        lengths = rng.integers(max(1, n // 2), n + 1, size=shape[0])
        lengths[0] = n
        mask = np.arange(n)[None, :] < lengths[:, None]
        return np.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - 2)), shape).astype(dt)
    if dt.kind in "iu":
        lo, hi = s.int_range or (0, 10)
        return rng.integers(lo, hi, size=shape).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if s.role == "scaled" and s.value_range:
        return rng.uniform(s.value_range[0], s.value_range[1], size=shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def random_feeds(specs: tuple[TensorSpec, ...], batch: int = 2, seed: int = 0, shapes: Mapping[str, tuple[int, ...]] | None = None,
                 max_length: int | None = None, second: bool = False) -> dict[str, np.ndarray]:
    """Seeded random inputs valid for the model: token ids within their vocabulary, masks
    that are masks, pixels in the range a preprocessing layer expects, else standard normal."""
    if batch < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch}")
    shapes = dict(shapes or {})
    unknown = [n for n in shapes if n not in {s.name for s in specs}]
    if unknown:
        raise InputError(f"--shape names unknown input {unknown}; the model's inputs are {[s.name for s in specs]}")
    rng = np.random.default_rng(seed + (1 if second else 0))
    for s in specs:
        if s.dtype == "string":
            raise InputError(f"input {s.name!r} takes strings: pass --inputs with sample texts")
    return {s.name: _draw(s, (batch, *check_dims(s, shapes, max_length, second)), rng) for s in specs}


def require_pillow(message: str) -> None:
    """``MissingDependencyError(message)`` unless Pillow is installed."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        raise MissingDependencyError(message) from None


def image_pixels(path: str | Path, h: int, w: int, c: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One image file as float32 (h, w, c) pixels scaled to [0, 1] (bilinear resize), and its
    (width, height) before; ``c`` is 1, 3 or 4 channels. Needs Pillow."""
    from PIL import Image

    from edgekit.safeparse import open_image

    img = open_image(path, _IMAGE_MODES[c])
    arr = np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32).reshape(h, w, c) / 255.0
    return arr, img.size
