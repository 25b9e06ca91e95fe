"""Helpers for the attacks: the real CLI in a subprocess (optionally under an address-space
limit, so a memory bomb that got through could not take the machine down), and crafted files."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

GiB = 1024**3


def edgekit(args: list[str], cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
            limit_as: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``edgekit ARGS`` in a fresh process; ``limit_as`` caps its address space (RLIMIT_AS)."""

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    root = str(Path(__file__).resolve().parents[2])
    full = {**os.environ, "OPENBLAS_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")])), **(env or {})}
    return subprocess.run([sys.executable, "-c", "from edgekit.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=cwd, env=full, timeout=timeout, preexec_fn=limit if limit_as else None)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The run failed with ``code`` and exactly one ``edgekit: error:`` line, no traceback."""
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text[-3000:]
    assert proc.returncode == code, (proc.returncode, text[-3000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgekit: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="session")
def small_keras(pool, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("small")
    return Path(pool.tf.call("tests.security.hostile_tf:small_keras", str(d / "small.keras"), timeout=120))


def keras_members(src: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(src) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for n, data in members.items():
            z.writestr(n, data)
    return path


def keras_declaring_weights(src: Path, out: Path, nbytes: int) -> Path:
    """``src`` whose weights file declares an ``nbytes`` float32 dataset with no data written
    (HDF5 allocates nothing until it is read): a few KB on disk."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("layers/dense/vars/0", shape=(nbytes // 4,), dtype="f4", chunks=(1 << 20,))
    return write_zip(out, {**keras_members(src), "model.weights.h5": buf.getvalue()})


def keras_with_zero_member(src: Path, out: Path, nbytes: int) -> Path:
    """``src`` plus a deflated member of ``nbytes`` zeros (about 1 MB per GiB compressed)."""
    members = keras_members(src)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in members.items():
            z.writestr(n, data)
        with z.open("assets/zeros.bin", "w", force_zip64=True) as m:
            chunk = bytes(1 << 24)
            for _ in range(nbytes // len(chunk)):
                m.write(chunk)
    return out


def npy_header_only(path: Path, shape: tuple[int, ...], dtype: str = "<f4") -> Path:
    """An .npy that declares ``shape`` and holds no data."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": dtype, "fortran_order": False, "shape": shape})
    return path


def npz_declaring(path: Path, name: str, shape: tuple[int, ...]) -> Path:
    """An .npz whose member declares ``shape`` (float32) and holds zeros, deflated."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(f"{name}.npy", "w", force_zip64=True) as m:
            np.lib.format.write_array_header_1_0(m, {"descr": "<f4", "fortran_order": False, "shape": shape})
            left = int(np.prod(shape)) * 4
            chunk = bytes(1 << 24)
            while left > 0:
                m.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)
    return path


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height (the pixel data is a stub)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def deep_toml(depth: int) -> str:
    return "x = " + "[" * depth + "]" * depth + "\n"


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path
