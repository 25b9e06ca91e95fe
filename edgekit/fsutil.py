"""Atomic writes: a reader never sees a file or directory that is only partly written."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

STAGING_PREFIX = ".edgekit-staging-"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(str(f.relative_to(p)).encode())
            h.update(b"\0")
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    else:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_of(path: str | os.PathLike[str]) -> int:
    p = Path(path)
    if p.is_dir():
        return sum(q.stat().st_size for q in p.rglob("*") if q.is_file())
    return p.stat().st_size


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file follows the umask
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        _remove(Path(tmp))
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def move_into_place(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Rename a finished file or directory over ``dst`` (same filesystem).

    A directory cannot be renamed over a non-empty one, so the old one is first renamed
    aside and removed afterwards: at every moment ``dst`` is either the old complete
    version or the new complete one.
    """
    s, d = Path(src), Path(dst)
    if s.is_dir() and d.exists():
        aside = d.with_name(f"{STAGING_PREFIX}old-{os.getpid()}-{d.name}")
        _remove(aside)
        os.replace(d, aside)
        os.replace(s, d)
        _remove(aside)
    else:
        if d.is_dir():
            _remove(d)
        os.replace(s, d)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def remove_path(p: str | os.PathLike[str]) -> None:
    _remove(Path(p))

