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


@dataclass(frozen=True)
class CheckOptions:
    """How artifacts are fed and judged (everything of a run except the model and paths)."""

    batch_size: int = 2
    seed: int = 0
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    opset: int = DEFAULT_OPSET
    atol: Mapping[str | None, float] = field(default_factory=dict)
    rtol: Mapping[str | None, float] = field(default_factory=dict)
    timeout: float = 600.0
    repeats: int = 5
    target_runtime: dict[str, Any] | None = None  # a compat table: TFLite ops must run there


def convert(
    model: str,
    out_dir: str | os.PathLike[str],
    formats: str | list[str] | None = None,
    inputs: str | None = None,
    input_arrays: Mapping[str, np.ndarray] | None = None,
    input_label: str = "given arrays",
    batch_size: int = 2,
    seed: int = 0,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    opset: int = DEFAULT_OPSET,
    atol: Mapping[str | None, float] | None = None,
    rtol: Mapping[str | None, float] | None = None,
    unsafe: bool = False,
    timeout: float = 600.0,
    repeats: int = 5,
    target_runtime: str | None = None,
    progress: Progress | None = None,
    pool: WorkerPool | None = None,
) -> ConvertResult:
    """Export ``model`` to ``formats`` under ``out_dir`` and check each artifact.

    Inputs are ``inputs`` (an .npz/.npy path), else ``input_arrays`` (named arrays,
    described as ``input_label``), else seeded random arrays. Bad input raises an
    ``EdgekitError`` before anything is written. Conversion and runtime failures (crashes
    included) become rows with status ``error``; ``ConvertResult.exit_code`` sums them up.
    """
    t_start = time.perf_counter()
    source = detect(model, unsafe=unsafe)
    fmts = formats if isinstance(formats, list) else parse_formats(formats)
    for f in fmts:
        if f not in FORMATS:
            raise errors.InputError(f"unknown format {f!r}; choose from: {', '.join(FORMATS)}")
    out = Path(out_dir)
    check_out_dir(out)
    if inputs:
        arrays, label = load_arrays(inputs), os.path.abspath(inputs)
    elif input_arrays is not None:
        arrays, label = dict(input_arrays), input_label
    else:
        arrays, label = None, "random"
    table = None
    if target_runtime:
        from edgekit.runtimes.compat import find_table

        table = find_table(target_runtime)
    opts = CheckOptions(batch_size, seed, dict(shapes or {}), opset, dict(atol or {}), dict(rtol or {}), timeout,
                        repeats, table)
    run = _Run(source, fmts, out, opts, progress or (lambda _m: None), pool or default_pool())
    scratch = tempfile.mkdtemp(prefix="edgekit-run-")
    try:
        return run.execute(arrays, label, scratch, t_start)
    finally:
        remove_path(scratch)


class _Run:
    """One conversion run: the model loaded in the TensorFlow worker, its reference
    outputs, then each format exported, run and compared."""

    def __init__(self, source: ModelSource, fmts: list[str], out: Path, opts: CheckOptions, say: Progress,
                 pool: WorkerPool) -> None:
        self.given = source  # what the user named; the manifest records this
        self.source = source  # what the workers load (may carry a weights snapshot)
        self.fmts, self.out, self.opts, self.say, self.pool = fmts, out, opts, say, pool

    def _tf(self, func: str, *args: Any, tag: str, **kw: Any) -> Any:
        return self.pool.tf.call(f"edgekit.tasks:{func}", self.source.to_json(), *args,
                                 timeout=self.opts.timeout, tag=tag, **kw)

    def execute(self, arrays: Mapping[str, np.ndarray] | None, label: str, scratch: str, t_start: float) -> ConvertResult:
        self.scratch = scratch
        self.say(f"loading {self.source.display}")
        spec = ModelSpec.from_json(self._tf("inspect_model", tag="load"))
        for m in (self.opts.atol, self.opts.rtol):
            bad = [k for k in m if k is not None and k not in spec.output_names]
            if bad:
                raise errors.InputError(f"tolerance given for unknown output {bad}; the model's outputs are {spec.output_names}")
        if arrays is not None:
            feeds = bind(arrays, spec.inputs)
            feeds_info: dict[str, Any] = {"source": label, "batch": int(next(iter(feeds.values())).shape[0])}
        else:
            o = self.opts
            feeds = random_feeds(spec.inputs, batch=o.batch_size, seed=o.seed, shapes=o.shapes)
            feeds_info = {"source": "random", "seed": o.seed, "batch": o.batch_size,
                          "distribution": "standard normal floats; integers uniform in each input's range"}
        feeds_info["shapes"] = {k: list(v.shape) for k, v in feeds.items()}
        if self.source.built_by_code:
            # Code-built models start from random weights: pin them so that a worker restarted
            # after a crash rebuilds the very model every artifact of this run comes from.
            snap = os.path.join(scratch, "snapshot.weights.h5")
            self.source = ModelSource(**self._tf("snapshot_weights", snap, tag="snapshot"))
        self.say(f"reference: {self.source.display} on {feeds_info['source']} inputs, batch {feeds_info['batch']}")
        reference, ref_latency = self._tf("reference", feeds, self.opts.repeats, tag="reference")

        staging = _make_out_dir(self.out)
        lock = _lock_out_dir(self.out, staging)
        try:
            clean_stale_staging_except(self.out, staging)
            rows = []
            for i, fmt in enumerate(self.fmts, 1):
                row = self._one(fmt, f"[{i}/{len(self.fmts)}] {fmt}", spec, feeds, reference, staging)
                rows.append(row)
            result = ConvertResult(self.given, spec, self.out, rows, feeds_info, ref_latency,
                                   self.out / "manifest.json", time.perf_counter() - t_start)
            from edgekit.report.manifest import write_manifest

            write_manifest(result)
        finally:
            remove_path(staging)
            lock.close()
        return result

    def _one(self, fmt: str, prefix: str, spec: ModelSpec, feeds: dict[str, np.ndarray],
             reference: dict[str, np.ndarray], staging: Path) -> ArtifactResult:
        info = FORMATS[fmt]
        row = ArtifactResult(fmt, runtime=info.runtime,
                             tolerances=tolerances_for(info.policy, spec, self.opts.atol, self.opts.rtol))
        if info.needs_keras_architecture and self.source.kind == "saved_model":
            row.status, row.error = SKIPPED, "input is a SavedModel, which holds no Keras architecture"
            self.say(f"{prefix}: skipped ({row.error})")
            return row
        missing = unavailable_reason(info.runtime)
        if missing:
            row.status, row.stage, row.error = ERROR, "run", f"runtime {info.runtime} unavailable: {missing}"
            self.say(f"{prefix}: {row.error}")
            return row
        staged = staging / info.filename
        self.say(f"{prefix}: converting")
        try:
            options = {"opset": self.opts.opset} if fmt == "onnx" else {}
            row.meta = self._tf("export", fmt, str(staged), options, self.scratch, tag=f"export:{fmt}",
                                on_progress=self.say)
            row.convert_s = row.meta.pop("convert_s", None)
            row.notes.extend(row.meta.pop("notes", []))
        except (errors.ConversionError, errors.WorkerCrashed, errors.InputError) as exc:
            row.status, row.stage, row.error = ERROR, "convert", str(exc)
            self.say(f"{prefix}: conversion failed: {exc}")
            return row
        if fmt == "tflite" and self.opts.target_runtime is not None:
            from edgekit.runtimes.compat import incompatibilities
            from edgekit.runtimes.tflite_ops import list_ops

            t = self.opts.target_runtime
            bad = incompatibilities(list_ops(staged.read_bytes()), t)
            if bad:
                row.status, row.stage = ERROR, "compat"
                row.error = f"would not run on {t['runtime']} {t['version']}: {'; '.join(bad)}"
                self.say(f"{prefix}: {row.error}")
                return row  # not published: the file is unusable where it is meant to run
            row.notes.append(f"every operator version runs on {t['runtime']} {t['version']}")
        self.say(f"{prefix}: running in {info.runtime}")
        worker = self.pool.tf if RUNTIMES[info.runtime].worker == "tf" else self.pool.rt
        run_opts = {"unsafe": True} if (self.source.unsafe and worker is self.pool.tf) else {}
        try:
            res = worker.call("edgekit.tasks:run_artifact", info.runtime, str(staged), feeds, self.opts.repeats,
                              run_opts, timeout=self.opts.timeout, tag=f"run:{fmt}")
        except (errors.RuntimeFailure, errors.WorkerCrashed, errors.InputError) as exc:
            # name the file where the user will find it, not its staging path
            row.status, row.stage, row.error = ERROR, "run", str(exc).replace(str(staging), str(self.out))
        else:
            row.latency = res["latency"]
            row.comparison = compare(reference, res["outputs"], row.tolerances)
            row.status = PASS if row.comparison else MISMATCH
            if not row.comparison:
                row.stage, row.error = "compare", "; ".join(row.comparison.failures())
        self._publish(info, staged, row, staging)
        self.say(f"{prefix}: {row.status}" + (f" ({row.error})" if row.error else ""))
        return row

    def _publish(self, info: Any, staged: Path, row: ArtifactResult, staging: Path) -> None:
        """Rename a finished artifact (and its companion files) into the output directory."""
        extras = [staging / e for e in info.extra_files if (staging / e).exists()]
        for e in extras:
            move_into_place(e, self.out / e.name)
        final = self.out / info.filename
        move_into_place(staged, final)
        row.path = str(final)
        row.size = size_of(final) + sum(size_of(self.out / e.name) for e in extras)
        row.sha256 = sha256_of(final)
        if extras:
            row.meta["extra_files"] = {e.name: sha256_of(self.out / e.name) for e in extras}


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
