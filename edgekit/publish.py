"""The end of a run: every staged artifact described (final path, size, sha256), the
manifest written into staging, then all of it published at once (edgekit/outdir.py)."""
from __future__ import annotations

import hashlib
from pathlib import Path

from edgekit import errors
from edgekit.converters import FORMATS
from edgekit.fsutil import sha256_of, size_of
from edgekit.outdir import OutDir
from edgekit.results import ArtifactResult, ConvertResult, Job


def _extras(job: Job, staging: Path) -> list[Path]:
    return [staging / e for e in FORMATS[job.format].extra_files if job.recipe is None and (staging / e).exists()]


def describe(staged: list[tuple[Job, ArtifactResult, Path]], staging: Path, out: Path, run_files: dict[str, bytes]) -> None:
    """Final path, size and sha256 of every staged artifact (before anything moves)."""
    for job, row, path in staged:
        extras = _extras(job, staging)
        row.path = str(out / job.filename)
        row.size = size_of(path) + sum(size_of(e) for e in extras)
        row.sha256 = sha256_of(path)
        if extras:
            row.meta["extra_files"] = {e.name: sha256_of(e) for e in extras}
        if run_files:  # preprocessing.json: every artifact of a string model needs it
            row.meta.setdefault("extra_files", {}).update(
                {n: hashlib.sha256(d).hexdigest() for n, d in run_files.items()})


def publish(result: ConvertResult, staged: list[tuple[Job, ArtifactResult, Path]], staging: Path, outd: OutDir,
            run_files: dict[str, bytes]) -> None:
    """Write the manifest and the run-level files into staging, then publish them with every
    finished artifact and its extra files. The new manifest is written before anything of the
    previous output is touched: a full disk or a permission error stops the run here,
    leaving the earlier output intact."""
    from edgekit.report.manifest import write_manifest

    manifest = staging / "manifest.json"
    try:
        write_manifest(result, manifest)
        names = []
        for name, data in run_files.items():
            (staging / name).write_bytes(data)
            names.append(name)
        for job, _row, _path in staged:
            names += [e.name for e in _extras(job, staging)]
            names.append(job.filename)
        outd.publish(names, manifest)
    except OSError as exc:
        raise errors.WriteFailure(f"cannot write the output to {result.out_dir}: {exc.strerror}") from None
