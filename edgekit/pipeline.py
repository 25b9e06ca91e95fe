"""The one flow: model -> every format -> each artifact run on the same named inputs ->
compared with the model -> matrix and manifest.

Runs in the parent process, which never imports TensorFlow: loading, exporting and the
TensorFlow-side checks happen in the ``tf`` worker, LiteRT and ONNX Runtime in the ``rt``
worker. A worker that crashes or hangs turns the step in flight into a failed row.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from edgekit import errors
from edgekit.converters import DEFAULT_OPSET, FORMATS, parse_formats
from edgekit.feeds import bind, load_arrays, random_feeds
from edgekit.fsutil import STAGING_PREFIX, move_into_place, remove_path, sha256_of, size_of
from edgekit.models.source import ModelSource, detect
from edgekit.runtimes import RUNTIMES, unavailable_reason
from edgekit.specs import ModelSpec
from edgekit.validate import Comparison, Tolerance, compare, default_tolerance
from edgekit.worker import WorkerPool, default_pool

PASS, MISMATCH, ERROR, SKIPPED = "pass", "mismatch", "error", "skipped"


@dataclass
class ArtifactResult:
    """One row of the matrix."""

    format: str
    path: str | None = None
    status: str = ERROR
    size: int | None = None
    sha256: str | None = None
    convert_s: float | None = None
    latency: dict[str, float] | None = None
    comparison: Comparison | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    runtime: str = ""
    stage: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, out_dir: Path) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": os.path.relpath(self.path, out_dir) if self.path else None,
            "status": self.status,
            "size": self.size,
            "sha256": self.sha256,
            "convert_s": self.convert_s,
            "runtime": self.runtime,
            "latency": self.latency,
            "stage": self.stage or None,
            "error": self.error,
            "notes": self.notes,
            "meta": self.meta,
            "comparison": self.comparison.to_json() if self.comparison else None,
        }


@dataclass
class ConvertResult:
    source: ModelSource
    spec: ModelSpec
    out_dir: Path
    rows: list[ArtifactResult]
    feeds_info: dict[str, Any]
    reference_latency: dict[str, float]
    manifest_path: Path
    elapsed_s: float

    @property
    def exit_code(self) -> int:
        """1 if anything failed to convert or run, else 3 if any tolerance was exceeded, else 0."""
        if any(r.status == ERROR for r in self.rows):
            return errors.EXIT_FAILED
        if any(r.status == MISMATCH for r in self.rows):
            return errors.EXIT_TOLERANCE
        return errors.EXIT_OK


def parse_tolerance_overrides(values: tuple[str, ...] | list[str], what: str) -> dict[str | None, float]:
    """``["1e-3", "probs=1e-2"]`` -> ``{None: 1e-3, "probs": 1e-2}`` (None = every output)."""
    out: dict[str | None, float] = {}
    for v in values:
        name, sep, num = v.rpartition("=")
        try:
            x = float(num)
            if x < 0 or not np.isfinite(x):
                raise ValueError
        except ValueError:
            raise errors.InputError(f"--{what} {v!r}: expected a non-negative number or OUTPUT=NUMBER") from None
        out[name if sep else None] = x
    return out


def tolerances_for(policy: str, spec: ModelSpec, atol: Mapping[str | None, float], rtol: Mapping[str | None, float]) -> dict[str, Tolerance]:
    base = default_tolerance(policy)
    out = {}
    for name in spec.output_names:
        a = atol.get(name, atol.get(None))
        r = rtol.get(name, rtol.get(None))
        if a is None and r is None:
            out[name] = base
        else:
            out[name] = Tolerance(base.atol if a is None else a, base.rtol if r is None else r, "user")
    return out


def check_out_dir(out_dir: Path) -> None:
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


def _make_out_dir(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = out_dir / f"{STAGING_PREFIX}{os.getpid()}"
        remove_path(staging)
        staging.mkdir()
    except OSError as exc:
        raise errors.InputError(f"cannot write to output directory {out_dir}: {exc.strerror}") from None
    return staging


Progress = Callable[[str], None]


def convert(
    model: str,
    out_dir: str | os.PathLike[str],
    formats: str | list[str] | None = None,
    inputs: str | None = None,
    input_arrays: Mapping[str, np.ndarray] | None = None,
    batch_size: int = 2,
    seed: int = 0,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    opset: int = DEFAULT_OPSET,
    atol: Mapping[str | None, float] | None = None,
    rtol: Mapping[str | None, float] | None = None,
    unsafe: bool = False,
    timeout: float = 600.0,
    repeats: int = 5,
    progress: Progress | None = None,
    pool: WorkerPool | None = None,
) -> ConvertResult:
    """Export ``model`` to ``formats`` under ``out_dir`` and check each artifact.

    Bad input raises an ``EdgekitError`` before anything is written. Conversion and runtime
    failures (crashes included) become rows with status ``error``; the result's
    ``exit_code`` summarizes them.
    """
    t_start = time.perf_counter()
    say = progress or (lambda _m: None)
    source = detect(model, unsafe=unsafe)
    fmts = formats if isinstance(formats, list) else parse_formats(formats)
    for f in fmts:
        if f not in FORMATS:
            raise errors.InputError(f"unknown format {f!r}; choose from: {', '.join(FORMATS)}")
    out = Path(out_dir)
    check_out_dir(out)
    user_arrays = load_arrays(inputs) if inputs else (dict(input_arrays) if input_arrays is not None else None)
    atol, rtol = dict(atol or {}), dict(rtol or {})
    pool = pool or default_pool()

    say(f"loading {source.display}")
    spec = ModelSpec.from_json(pool.tf.call("edgekit.tasks:inspect_model", source.to_json(), timeout=timeout, tag="load"))
    scratch = tempfile.mkdtemp(prefix="edgekit-run-")
    try:
        return _convert_loaded(source, spec, scratch, fmts, out, user_arrays, inputs, batch_size, seed, shapes,
                               opset, atol, rtol, timeout, repeats, say, pool, t_start)
    finally:
        remove_path(scratch)


def _convert_loaded(source: ModelSource, spec: ModelSpec, scratch: str, fmts: list[str], out: Path,
                    user_arrays: Mapping[str, np.ndarray] | None, inputs: str | None, batch_size: int, seed: int,
                    shapes: Mapping[str, tuple[int, ...]] | None, opset: int, atol: dict[str | None, float],
                    rtol: dict[str | None, float], timeout: float, repeats: int, say: Progress, pool: WorkerPool,
                    t_start: float) -> ConvertResult:
    given = source  # what the user named; the manifest records this, not the scratch snapshot
    if source.built_by_code:
        # Code-built models start from random weights: pin them so that a worker restarted
        # after a crash rebuilds the very model every artifact of this run comes from.
        snap = os.path.join(scratch, "snapshot.weights.h5")
        source = ModelSource(**pool.tf.call("edgekit.tasks:snapshot_weights", source.to_json(), snap,
                                            timeout=timeout, tag="snapshot"))
    for m in (atol, rtol):
        bad = [k for k in m if k is not None and k not in spec.output_names]
        if bad:
            raise errors.InputError(f"tolerance given for unknown output {bad}; the model's outputs are {spec.output_names}")
    if user_arrays is not None:
        feeds = bind(user_arrays, spec.inputs)
        feeds_info = {"source": os.path.abspath(inputs) if inputs else "given arrays", "batch": int(next(iter(feeds.values())).shape[0])}
    else:
        feeds = random_feeds(spec.inputs, batch=batch_size, seed=seed, shapes=shapes)
        feeds_info = {"source": "random", "seed": seed, "batch": batch_size,
                      "distribution": "standard normal floats; integers uniform in each input's range"}
    feeds_info["shapes"] = {k: list(v.shape) for k, v in feeds.items()}
    say(f"reference: {source.display} on {feeds_info['source']} inputs, batch {feeds_info['batch']}")
    reference, ref_latency = pool.tf.call("edgekit.tasks:reference", source.to_json(), feeds, repeats, timeout=timeout, tag="reference")

    staging = _make_out_dir(out)
    lock = _lock_out_dir(out, staging)
    clean_stale_staging_except(out, staging)
    rows: list[ArtifactResult] = []
    try:
        for i, fmt in enumerate(fmts, 1):
            info = FORMATS[fmt]
            row = ArtifactResult(fmt, runtime=info.runtime, tolerances=tolerances_for(info.policy, spec, atol, rtol))
            rows.append(row)
            prefix = f"[{i}/{len(fmts)}] {fmt}"
            if info.needs_keras_architecture and source.kind == "saved_model":
                row.status, row.error = SKIPPED, "input is a SavedModel, which holds no Keras architecture"
                say(f"{prefix}: skipped ({row.error})")
                continue
            missing = unavailable_reason(info.runtime)
            if missing:
                row.status, row.stage, row.error = ERROR, "check", f"runtime {info.runtime} unavailable: {missing}"
                say(f"{prefix}: {row.error}")
                continue
            staged = staging / info.filename
            say(f"{prefix}: converting")
            try:
                options = {"opset": opset} if fmt == "onnx" else {}
                row.meta = pool.tf.call(
                    "edgekit.tasks:export", source.to_json(), fmt, str(staged), options,
                    timeout=timeout, tag=f"export:{fmt}", on_progress=say,
                )
                row.convert_s = row.meta.pop("convert_s", None)
                row.notes.extend(row.meta.pop("notes", []))
            except (errors.ConversionError, errors.WorkerCrashed, errors.InputError) as exc:
                row.status, row.stage, row.error = ERROR, "convert", str(exc)
                say(f"{prefix}: conversion failed: {exc}")
                continue
            say(f"{prefix}: running in {info.runtime}")
            worker = pool.tf if RUNTIMES[info.runtime].worker == "tf" else pool.rt
            try:
                run_opts = {"unsafe": True} if (source.unsafe and worker is pool.tf) else {}
                res = worker.call("edgekit.tasks:run_artifact", info.runtime, str(staged), feeds, repeats, run_opts,
                                  timeout=timeout, tag=f"run:{fmt}")
            except (errors.RuntimeFailure, errors.WorkerCrashed, errors.InputError) as exc:
                row.status, row.stage, row.error = ERROR, "run", str(exc)
            else:
                row.latency = res["latency"]
                row.comparison = compare(reference, res["outputs"], row.tolerances)
                row.status = PASS if row.comparison else MISMATCH
                if not row.comparison:
                    row.stage, row.error = "compare", "; ".join(row.comparison.failures())
            final = out / info.filename
            extras = [staging / e for e in info.extra_files if (staging / e).exists()]
            for e in extras:
                move_into_place(e, out / e.name)
            move_into_place(staged, final)
            row.path = str(final)
            row.size = size_of(final) + sum(size_of(out / e.name) for e in extras)
            row.sha256 = sha256_of(final)
            if extras:
                row.meta["extra_files"] = {e.name: sha256_of(out / e.name) for e in extras}
            say(f"{prefix}: {row.status}" + (f" ({row.error})" if row.error else ""))
        result = ConvertResult(given, spec, out, rows, feeds_info, ref_latency, out / "manifest.json",
                               time.perf_counter() - t_start)
        from edgekit.report.manifest import write_manifest

        write_manifest(result)
    finally:
        remove_path(staging)
        lock.close()
    return result


def _lock_out_dir(out: Path, staging: Path) -> Any:
    """An exclusive lock on the output directory: a second run into it refuses, never interleaves."""
    import fcntl

    fh = open(out / ".edgekit.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        remove_path(staging)
        raise errors.InputError(f"another edgekit run is writing to {out}: wait for it or use another --out") from None
    return fh


def clean_stale_staging_except(out: Path, keep: Path) -> None:
    """Staging directories of runs that were killed: ours is kept, others removed."""
    for q in out.iterdir():
        if q.name.startswith(STAGING_PREFIX) and q != keep:
            remove_path(q)
