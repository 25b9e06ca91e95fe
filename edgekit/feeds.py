"""Input arrays bound by name: loaded from ``.npz``/``.npy`` or generated, checked against
the model's input specs (numpy only)."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from edgekit.errors import InputError
from edgekit.specs import TensorSpec


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


def random_feeds(specs: tuple[TensorSpec, ...], batch: int = 2, seed: int = 0, shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """Seeded random inputs: standard normal floats, integers within each input's range."""
    if batch < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch}")
    shapes = dict(shapes or {})
    unknown = [n for n in shapes if n not in {s.name for s in specs}]
    if unknown:
        raise InputError(f"--shape names unknown input {unknown}; the model's inputs are {[s.name for s in specs]}")
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        dims = list(s.shape[1:])
        if s.name in shapes:
            given = shapes[s.name]
            if len(given) != len(dims) or any(d is not None and d != g for d, g in zip(dims, given)):
                raise InputError(f"--shape {s.name}: {given} does not fit the model's {_dims_text(s.shape)}")
            dims = list(given)
        if any(d is None for d in dims):
            raise InputError(
                f"input {s.name!r} has unknown dimensions {_dims_text(s.shape)}: pass --shape {s.name}=D1,D2,... or --inputs"
            )
        shape = (batch, *dims)
        dt = np.dtype(s.dtype)
        if dt.kind in "iu":
            lo, hi = s.int_range or (0, 10)
            out[s.name] = rng.integers(lo, hi, size=shape).astype(dt)
        elif dt.kind == "b":
            out[s.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            out[s.name] = rng.standard_normal(shape).astype(dt)
    return out
