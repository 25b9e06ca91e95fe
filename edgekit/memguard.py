"""Size a model or an array file from what it declares, and refuse it before allocating.

A file's size on disk says nothing about the memory it takes: a 4.6 MB ``.keras`` of zeros
unpacks to 1 GiB of weights, an HDF5 dataset can declare any shape with no data written, a
2 MB ``.npz`` can declare 2 GiB arrays. Every size here comes from headers only (zip
directory, HDF5 metadata via h5py, ``.npy`` headers), never from reading the data.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import IO, Any, Iterable, Mapping

import numpy as np

from edgekit.errors import InputError
from edgekit.units import memory_text

# Loading, exporting and checking hold several copies of the weights at once (Keras, the
# traced graph, the converter's buffers); measured peaks are 4-6x the weights.
MODEL_FACTOR = 6
# Input arrays: loaded, cast to the model's dtype, sent to each worker, and the outputs.
ARRAY_FACTOR = 4
GiB = 1024**3
H5_MEMBER_INSPECT_BYTES = 256 * 1024**2


def available_memory() -> int | None:
    """What this process can still allocate: the least of the machine's available memory, the
    cgroup's limit (containers, CI runners) and the address-space limit (``ulimit -v``)."""
    limits = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        mx = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if mx != "max":
            limits.append(int(mx) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft - _vm_size())
    except (ImportError, OSError, ValueError):
        pass
    return max(0, min(limits)) if limits else None


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _h5_declared(f: Any) -> int:
    """Bytes every dataset of an open h5py file declares (shape x dtype; data is not read)."""
    import h5py

    total = 0

    def visit(_name: str, obj: Any) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            total += int(np.prod(obj.shape, dtype=object)) * obj.dtype.itemsize

    f.visititems(visit)
    return total


def declared_model_bytes(kind: str, location: str) -> int:
    """What a model file declares: a .keras archive's uncompressed members (and the weights its
    HDF5 member declares), an .h5 file's datasets, a SavedModel directory's files."""
    import h5py

    p = Path(location)
    try:
        if kind == "keras":
            with zipfile.ZipFile(p) as zf:
                total = sum(i.file_size for i in zf.infolist())
                for i in zf.infolist():
                    # h5py seeks back and forth: a deflated member is read into memory first
                    # (a large one already counts by its uncompressed size)
                    if i.filename.endswith(".h5") and i.file_size <= H5_MEMBER_INSPECT_BYTES:
                        with h5py.File(io.BytesIO(zf.read(i)), "r") as f:
                            total = max(total, _h5_declared(f))
                return total
        if kind == "h5":
            with h5py.File(p, "r") as f:
                return max(_h5_declared(f), p.stat().st_size)
        if kind == "saved_model":
            return sum(q.stat().st_size for q in p.rglob("*") if q.is_file() and not q.is_symlink())
    except Exception as exc:  # noqa: BLE001 - h5py raises KeyError, TypeError, ... for damaged files
        raise InputError(f"{location} is unreadable or corrupted ({str(exc).splitlines()[0][:160]})") from None
    return 0


def refuse_if_too_big(what: str, declared: int, factor: int, available: int | None = None) -> None:
    """``InputError`` with both numbers when ``declared x factor`` exceeds available memory."""
    avail = available_memory() if available is None else available
    need = declared * factor
    if avail is not None and need > avail:
        raise InputError(f"{what} declares {memory_text(declared)}; working on it needs about {memory_text(need)} "
                         f"({factor}x) and {memory_text(avail)} is available: refusing it before allocating")


def check_model(kind: str, location: str) -> None:
    if kind in ("keras", "h5", "saved_model"):
        refuse_if_too_big(f"{location}", declared_model_bytes(kind, location), MODEL_FACTOR)


def _npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any]]:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(fh)
    else:
        shape, _, dtype = fmt._read_array_header(fh, version)  # noqa: SLF001 - v3 has no public reader
    if not isinstance(shape, tuple) or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"its header declares an invalid shape {str(shape)[:80]}")
    return shape, dtype


def declared_array_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes the arrays of an .npy/.npz file declare in their headers."""
    p = Path(path)
    try:
        if zipfile.is_zipfile(p):
            total = 0
            with zipfile.ZipFile(p) as zf:
                for i in zf.infolist():
                    if i.filename.endswith(".npy"):
                        with zf.open(i) as fh:
                            shape, dtype = _npy_header(fh)
                        total += int(np.prod(shape, dtype=object)) * dtype.itemsize
            return total
        with open(p, "rb") as fh:
            shape, dtype = _npy_header(fh)
        return int(np.prod(shape, dtype=object)) * dtype.itemsize
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises ValueError, SyntaxError, TokenError...
        raise InputError(f"{path} is not a readable .npz/.npy file: {str(exc).splitlines()[0][:160]}") from None


def check_arrays_file(path: str | os.PathLike[str]) -> None:
    refuse_if_too_big(str(path), declared_array_bytes(path), ARRAY_FACTOR)


def check_feeds(specs: Iterable[Any], batch: int, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Random inputs of ``batch`` x the given or fixed dimensions, sized before they are drawn."""
    total = 0
    for name, given in shapes.items():
        if any(d < 1 for d in given):
            raise InputError(f"--shape {name}={','.join(map(str, given))}: dimensions must be at least 1")
    for s in specs:
        dims = shapes.get(s.name) or tuple(s.shape[1:])
        if any(d is None or d < 0 for d in dims):
            continue  # random_feeds reports the missing dimension
        total += int(batch) * int(np.prod(dims, dtype=object)) * np.dtype(s.dtype).itemsize
    refuse_if_too_big(f"random inputs of batch {batch} ({', '.join(f'{k}={v}' for k, v in shapes.items()) or 'model shapes'})",
                      total, ARRAY_FACTOR)
