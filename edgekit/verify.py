"""``edgekit verify DIR``: recheck an output directory against its manifest (no TensorFlow).

The manifest is untrusted input: only relative paths inside DIR are followed, and only to
regular files (or directories of regular files, for a SavedModel); an absolute path, '..',
a symlink, a FIFO or a device is a problem, never opened. Otherwise a manifest naming
``/dev/zero`` would hang the check, and one naming any file with a guessed sha256 would
probe whether that file exists.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.fsutil import STAGING_PREFIX, sha256_of
from edgekit.safeparse import load_json, read_text


def _unsafe_reason(d: Path, rel: Any) -> str | None:
    """Why ``rel`` cannot be checked (None when it is a regular file or plain directory in ``d``)."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        return "not a path"
    if os.path.isabs(rel) or os.path.normpath(rel).split(os.sep)[0] == "..":
        return "outside the directory (only relative paths inside it are checked)"
    p = d
    for part in Path(os.path.normpath(rel)).parts:
        p = p / part
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return "missing"
        except OSError as exc:  # a name too long, a component that is a file
            return f"not checkable ({exc.strerror})"
        if stat.S_ISLNK(st.st_mode):
            return "a symbolic link (not followed)"
    if stat.S_ISDIR(st.st_mode):
        for root, dirs, files in os.walk(p):
            for name in dirs + files:
                m = os.lstat(os.path.join(root, name)).st_mode
                if not (stat.S_ISREG(m) or stat.S_ISDIR(m)):
                    return f"holds {os.path.relpath(os.path.join(root, name), d)}, which is not a regular file"
        return None
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def _entries(manifest: Any, mf: Path) -> list[tuple[Any, Any, bool]]:
    """(path, sha256, is_artifact) of every artifact and extra file, the manifest's types checked."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts", []), list):
        raise InputError(f"{mf} is not an edgekit manifest (expected an object with a list of artifacts)")
    out = []
    for i, a in enumerate(manifest.get("artifacts", [])):
        if not isinstance(a, dict):
            raise InputError(f"{mf}: artifacts[{i}] is {type(a).__name__}, expected an object")
        if not a.get("path"):
            continue
        out.append((a["path"], a.get("sha256"), True))
        meta = a.get("meta") or {}
        extra = meta.get("extra_files", {}) if isinstance(meta, dict) else None
        if not isinstance(extra, dict):
            raise InputError(f"{mf}: artifacts[{i}].meta.extra_files is not an object")
        out.extend((k, v, False) for k, v in extra.items())
    return out


def verify(out_dir: str) -> dict[str, Any]:
    """Every artifact the manifest lists exists with its sha256; leftovers are reported."""
    d = Path(out_dir)
    if not d.is_dir():
        raise InputError(f"{out_dir} is not a directory")
    mf = d / "manifest.json"
    if not mf.exists():
        raise InputError(f"{out_dir} has no manifest.json: not an edgekit output directory, or its last run did not finish")
    if mf.is_symlink():
        raise InputError(f"{mf} is a symbolic link: not an edgekit manifest")
    manifest = load_json(read_text(mf, "manifest"), str(mf))
    problems, checked = [], 0
    for rel, digest, is_artifact in _entries(manifest, mf):
        checked += is_artifact
        why = _unsafe_reason(d, rel)
        if why is not None:
            problems.append(f"{rel}: {why}")
        elif not isinstance(digest, str) or sha256_of(d / rel) != digest:
            problems.append(f"{rel}: sha256 differs from the manifest")
    leftovers = sorted(q.name for q in d.iterdir() if q.name.startswith(STAGING_PREFIX))
    return {"checked": checked, "problems": problems, "leftovers": leftovers, "ok": not problems}
