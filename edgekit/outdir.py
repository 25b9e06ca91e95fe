"""The output directory of a run: edgekit's own, checked, locked, staged, published, cleaned.

Rules (the README's "Output directory" and "Untrusted models and broken files"):

- A directory is edgekit's when it is empty, missing, or holds an edgekit ``manifest.json``
  (or the publish journal of an interrupted run). Anything else is refused (exit 2, naming a
  few of its files) unless ``force``: edgekit never mixes its files into a user's directory
  by accident, nor deletes a user's files.
- The input model and data files are never written over, ``force`` or not.
- A rerun removes exactly the files the previous manifest listed that this run does not
  produce, so the directory always matches its manifest; a path no manifest listed is never
  deleted (nor replaced, unless ``force``).
- One run at a time (an exclusive ``flock``); the lock file is removed when the run ends.
- Publishing is ordered so that a run killed at any moment leaves either the previous
  complete output or files that no manifest claims, and the journal tells the next run which
  files those are.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from edgekit import errors
from edgekit.fsutil import STAGING_PREFIX, atomic_write_json, move_into_place, remove_path

MANIFEST = "manifest.json"
LOCK = ".edgekit.lock"
JOURNAL = ".edgekit-publish.json"  # present only while a run publishes
CHECK_MARKER = ".edgekit-check.json"  # an `edgekit check` output directory
OWN_NAMES = (LOCK, JOURNAL, CHECK_MARKER)


def check_writable(out_dir: Path) -> None:
    """Fail early, before any work, if the output directory cannot be used."""
    if out_dir.exists() and not out_dir.is_dir():
        raise errors.InputError(f"output directory {out_dir} is a file: pass a directory path to --out")
    probe = out_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise errors.InputError(f"cannot create output directory {out_dir}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise errors.InputError(f"output directory {out_dir} is not writable (no write permission on {probe})")


def _safe_name(p: Any) -> str | None:
    """A manifest path as a relative name inside the directory, or None (absolute, '..', odd type)."""
    if not isinstance(p, str) or not p or os.path.isabs(p):
        return None
    norm = os.path.normpath(p)
    if norm.startswith("..") or norm == ".":
        return None
    return norm


def listed_paths(manifest: Any) -> set[str]:
    """Every file a manifest lists (artifacts and their extra files), as safe relative names."""
    out: set[str] = set()
    arts = manifest.get("artifacts") if isinstance(manifest, dict) else None
    for a in arts if isinstance(arts, list) else []:
        if not isinstance(a, dict):
            continue
        extra = (a.get("meta") or {}).get("extra_files") if isinstance(a.get("meta"), dict) else None
        for name in [a.get("path"), *(extra if isinstance(extra, dict) else {})]:
            n = _safe_name(name)
            if n:
                out.add(n)
    return out


def _read_json(p: Path) -> Any:
    try:
        if p.is_file() and not p.is_symlink() and p.stat().st_size < 64 * 1024**2:
            return json.loads(p.read_text())
    except (OSError, ValueError, RecursionError):
        pass
    return None


def is_edgekit_manifest(obj: Any) -> bool:
    return isinstance(obj, dict) and "manifest_version" in obj and isinstance(obj.get("artifacts"), list)


class OutDir:
    """One run's output directory.

    ``check()`` before any work; ``open()`` returns the staging directory (locked);
    ``publish(names, manifest)`` moves staged names and the staged manifest into place;
    ``close()`` removes staging and the lock. ``protected`` paths (the inputs) are never
    written over; ``planned`` names the files this run will produce (for the early check).
    """

    def __init__(self, path: str | os.PathLike[str], *, force: bool = False, protected: Iterable[str] = (),
                 planned: Iterable[str] = (), marker: str | None = None) -> None:
        self.path = Path(path)
        self.force = force
        self.protected = [Path(p).resolve() for p in protected if p]
        self.planned = list(planned)
        self.marker = marker  # a directory-level ownership marker (edgekit check)
        self.staging: Path | None = None
        self._lock: Any = None

    # -- before any work ------------------------------------------------------------------
    def previous(self) -> set[str]:
        """Files the previous run's manifest (and an interrupted publish's journal) listed."""
        names = listed_paths(_read_json(self.path / MANIFEST))
        journal = _read_json(self.path / JOURNAL)
        if isinstance(journal, dict) and isinstance(journal.get("paths"), list):
            names |= {n for n in map(_safe_name, journal["paths"]) if n}
        return names

    def owned(self) -> bool:
        if is_edgekit_manifest(_read_json(self.path / MANIFEST)) or (self.path / JOURNAL).is_file():
            return True
        return self._marked()

    def _marked(self) -> bool:
        """A directory-level marker (or, for `edgekit check`, its report.json) claims the whole directory."""
        if self.marker is None:
            return False
        report = _read_json(self.path / "report.json")
        return (self.path / self.marker).is_file() or (isinstance(report, dict) and "report_version" in report)

    def foreign_entries(self) -> list[str]:
        """What a directory holds besides edgekit's lock, journal and staging leftovers."""
        if not self.path.is_dir():
            return []
        return sorted(q.name for q in self.path.iterdir()
                      if q.name not in OWN_NAMES and not q.name.startswith(STAGING_PREFIX))

    def check(self) -> None:
        check_writable(self.path)
        self._check_protected()
        if self.force:
            return
        others = self.foreign_entries()
        if others and not self.owned():
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise errors.InputError(
                f"output directory {self.path} is not empty and was not made by edgekit (it holds {shown}): "
                "pass an empty or new directory, or --force to write into it (files edgekit does not write are kept)")
        prev = self.previous()
        clash = [] if self._marked() else [n for n in self.planned if (self.path / n).exists() and n not in prev]
        if clash:
            raise errors.InputError(
                f"output directory {self.path} holds {', '.join(clash)}, which no edgekit manifest lists: "
                "move it away, or pass --force to replace it")

    def _check_protected(self) -> None:
        out = self.path.resolve()
        for p in self.protected:
            if out == p or out.is_relative_to(p):
                raise errors.InputError(f"output directory {self.path} is inside the input {p}: pass another --out")
            for n in self.planned:
                t = out / n
                if t == p or p.is_relative_to(t):
                    raise errors.InputError(f"--out {self.path} would write {n} over the input {p}: pass another --out")

    # -- the run --------------------------------------------------------------------------
    def open(self) -> Path:
        """Create the directory, take its lock, remove killed runs' staging, make ours."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.InputError(f"cannot write to output directory {self.path}: {exc.strerror}") from None
        self._lock = self._take_lock()
        try:
            for q in self.path.iterdir():
                if q.name.startswith(STAGING_PREFIX):
                    remove_path(q)
            self.staging = self.path / f"{STAGING_PREFIX}{os.getpid()}"
            self.staging.mkdir()
            if self.marker is not None and not (self.path / self.marker).is_file():
                atomic_write_json(self.path / self.marker, {"made_by": "edgekit", "models": []})
        except OSError as exc:
            self.close()
            raise errors.InputError(f"cannot write to output directory {self.path}: {exc.strerror}") from None
        return self.staging

    def _take_lock(self) -> Any:
        """flock on ``.edgekit.lock``; the file is unlinked at close, so after locking we make
        sure it is still the file at that path (a run that opened it before the unlink would
        otherwise hold a lock nobody else sees)."""
        import fcntl

        path = self.path / LOCK
        for _ in range(5):
            fh = open(path, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                raise errors.InputError(
                    f"another edgekit run is writing to {self.path}: wait for it or use another --out") from None
            try:
                if os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino:
                    fh.write(f"{os.getpid()}\n")  # not an empty file: says who holds it
                    fh.flush()
                    return fh
            except FileNotFoundError:
                pass
            fh.close()
        raise errors.InputError(f"could not lock {self.path}: its lock file keeps changing")

    def publish(self, names: list[str], staged_manifest: Path) -> None:
        """Move the staged ``names`` and the manifest into place and remove the previous run's
        files that this run did not produce. Raises ``OSError`` (the caller reports it)."""
        assert self.staging is not None
        prev = self.previous()
        # The journal lists old and new files first: a kill from here on leaves a directory that
        # is still edgekit's, and whose every file the next run can account for.
        atomic_write_json(self.path / JOURNAL, {"paths": sorted(prev | set(names))})
        remove_path(self.path / MANIFEST)
        for n in names:
            move_into_place(self.staging / n, self.path / n)
        root = self.path.resolve()
        for n in sorted(prev - set(names)):
            target = self.path / n
            if not target.parent.resolve().is_relative_to(root):
                continue  # a symlinked parent would lead outside the directory
            if not any(target.resolve() == p or p.is_relative_to(target.resolve()) for p in self.protected):
                remove_path(target)
        move_into_place(staged_manifest, self.path / MANIFEST)
        remove_path(self.path / JOURNAL)

    def close(self) -> None:
        if self.staging is not None:
            remove_path(self.staging)
            self.staging = None
        if self._lock is not None:
            try:
                os.unlink(self.path / LOCK)  # while still holding it: see _take_lock
            except OSError:
                pass
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "OutDir":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
