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
from edgekit.feeds import bind, describe_distribution, load_arrays, random_feeds
from edgekit.fsutil import remove_path, sha256_of, size_of
from edgekit.models.source import ModelSource, detect
from edgekit.outdir import OutDir, check_writable as check_out_dir  # noqa: F401 - check_out_dir: API
from edgekit.runtimes import RUNTIMES, unavailable_reason
from edgekit.specs import ModelSpec
from edgekit.validate import Comparison, Tolerance, compare, default_tolerance
from edgekit.validate.truth import judge
from edgekit.verdict import check_feeds, reference_truth
from edgekit.worker import WorkerPool, default_pool

from edgekit.results import (  # noqa: F401 - re-exported: part of the pipeline's API
    CHECK_SAMPLES,
    ERROR,
    MISMATCH,
    PASS,
    REJECTED,
    SKIPPED,
    ArtifactResult,
    Cell,
    ConvertResult,
    Status,
    Job,
    build_jobs,
)


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
    """Per-output tolerances of one artifact. ``atol``/``rtol`` overrides apply to float
    artifacts; quantized ones keep their quality criteria (SNR, top-1), which a bound
    meant for float rounding would make fail by design."""
    base = default_tolerance(policy)
    if base.quality:
        return {name: base for name in spec.output_names}
    out = {}
    for name in spec.output_names:
        a = atol.get(name, atol.get(None))
        r = rtol.get(name, rtol.get(None))
        if a is None and r is None:
            out[name] = base
        else:
            out[name] = Tolerance(base.atol if a is None else a, base.rtol if r is None else r, "user")
    return out


def check_memory(source: ModelSource) -> None:
    """Refuse, with numbers, a model whose conversion would not fit in available memory, sized
    from what the file declares (edgekit/memguard.py). Code-built models are sized once built."""
    from edgekit.memguard import check_model

    check_model(source.kind, source.location)


def _out_dir(out: Path, source: ModelSource, jobs: list[Job], force: bool, data: list[str | None]) -> OutDir:
    """The run's output directory, checked before any work (the input files are protected)."""
    planned = [n for j in jobs for n in (j.filename, *(FORMATS[j.format].extra_files if j.recipe is None else ()))]
    inputs = [] if source.built_by_code else [source.location]
    outd = OutDir(out, force=force, protected=inputs + [d for d in data if d and os.path.exists(d)], planned=planned)
    outd.check()
    return outd


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
    max_accuracy_drop: float | None = None  # points; replaces the quality criteria of quantized rows
    auto: bool = False  # --quantize auto: keep the smallest passing TFLite mode
    truth: bool = True  # judge float artifacts against a float64 twin of the model too
    allow_nonfinite_inputs: bool = False


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
    custom_objects: str | None = None,
    timeout: float = 600.0,
    repeats: int = 5,
    target_runtime: str | None = None,
    quantize: str | None = None,
    onnx_quantize: str | None = None,
    io_dtype: str = "float32",
    calibration: str | None = None,
    calibration_samples: int = 200,
    calibration_method: str | None = None,
    eval_data: str | None = None,
    max_accuracy_drop: float | None = None,
    golden_outputs: Mapping[str, np.ndarray] | None = None,
    devices: str | list[str] | None = None,
    progress: Progress | None = None,
    pool: WorkerPool | None = None,
    force: bool = False,
    truth: bool = True,
    allow_nonfinite_inputs: bool = False,
) -> ConvertResult:
    """Export ``model`` to ``formats`` under ``out_dir`` and check each artifact.

    Inputs are ``inputs`` (an .npz/.npy path), else ``input_arrays`` (named arrays,
    described as ``input_label``), else seeded random arrays. ``quantize`` and
    ``onnx_quantize`` add quantized artifacts (``"int8,float16"``, ``"auto"``), calibrated on
    ``calibration`` (.npz/.npy/.csv/image folder/``digits``/``random``). ``eval_data`` (labelled)
    adds the task metric per artifact; ``max_accuracy_drop`` gates quantized ones on it.
    ``golden_outputs`` (stored outputs for ``input_arrays``) adds a second comparison of the
    live model and of every artifact against them. ``devices`` (``"x86-cpu,arm64-cortex-a76"``,
    ``all-available``) runs every artifact a device supports there too, as more cells.
    Bad input raises an ``EdgekitError`` before anything is written. Conversion and runtime
    failures (crashes included) become rows with status ``error``; ``ConvertResult.exit_code``
    sums them up. ``force`` writes into a non-empty directory that edgekit did not make.
    ``truth`` judges float artifacts against a float64 twin of the model as well
    (see ``edgekit.validate.truth``); inputs with NaN/inf are refused unless ``allow_nonfinite_inputs``.
    """
    from edgekit.quantize.recipes import parse_modes

    t_start = time.perf_counter()
    if not (isinstance(timeout, (int, float)) and 0 < timeout < float("inf")):  # nan fails too
        raise errors.InputError(f"--timeout {timeout}: expected a number of seconds > 0")
    source = detect(model, unsafe=unsafe, custom_objects=custom_objects)
    check_memory(source)
    fmts = formats if isinstance(formats, list) else parse_formats(formats)
    recipes = (parse_modes(quantize, "tflite", io_dtype, None, calibration_samples)
               + parse_modes(onnx_quantize, "onnx", io_dtype, calibration_method, calibration_samples))
    if calibration_method and not any(r.calibration_method for r in recipes):
        raise errors.InputError("--calibration-method applies to --onnx-quantize static")
    if max_accuracy_drop is not None and not eval_data:
        raise errors.InputError("--max-accuracy-drop needs labelled data: pass --eval-data data.npz (or digits)")
    if any(r.needs_calibration for r in recipes) and not calibration:
        modes = ", ".join(f"{r.family} {r.mode}" for r in recipes if r.needs_calibration)
        raise errors.InputError(
            f"{modes} need(s) calibration data: pass --calibration data.npz|data.npy|data.csv|images/|digits "
            "(or --calibration random, whose results are not meaningful)"
        )
    for f in fmts:
        if f not in FORMATS:
            raise errors.InputError(f"unknown format {f!r}; choose from: {', '.join(FORMATS)}")
    from edgekit.devices import resolve as resolve_devices

    profiles = resolve_devices(devices)
    out = Path(out_dir)
    jobs = build_jobs(fmts, recipes)
    outd = _out_dir(out, source, jobs, force, [inputs, calibration, eval_data])
    if inputs:
        arrays, label = load_arrays(inputs), os.path.abspath(inputs)
        from edgekit.precheck import check_inputs_early

        check_inputs_early(source.kind, source.location, arrays)
    elif input_arrays is not None:
        arrays, label = dict(input_arrays), input_label
    else:
        arrays, label = None, "random"
    # a subclassed model that recorded no build shape is traced on --shape, else on the
    # shapes of the given arrays (loaded once, above)
    trace = dict(shapes or {}) or ({k: tuple(v.shape[1:]) for k, v in arrays.items()} if inputs and arrays else {})
    if trace:
        import dataclasses

        source = dataclasses.replace(source, shapes={k: list(v) for k, v in trace.items()})
    table = None
    if target_runtime:
        from edgekit.runtimes.compat import find_table

        table = find_table(target_runtime)
    opts = CheckOptions(batch_size, seed, dict(shapes or {}), opset, dict(atol or {}), dict(rtol or {}), timeout,
                        repeats, table, max_accuracy_drop, bool(quantize and quantize.strip() == "auto"),
                        truth=truth, allow_nonfinite_inputs=allow_nonfinite_inputs)
    pool = pool or default_pool()
    pool.start()  # both workers import their libraries while the inputs are checked
    run = _Run(source, jobs, out, opts, progress or (lambda _m: None), pool)
    run.outdir = outd
    run.calibration_source, run.eval_source = calibration, eval_data
    run.profiles = profiles
    if golden_outputs is not None:
        if input_arrays is None:
            raise errors.InputError("golden outputs need the inputs they were computed from")
        run.golden = {k: np.asarray(v) for k, v in golden_outputs.items()}
    scratch = tempfile.mkdtemp(prefix="edgekit-run-")
    try:
        return run.execute(arrays, label, scratch, t_start)
    finally:
        if run.device_workers is not None:
            run.device_workers.close()
        remove_path(scratch)


class _Run:
    """One conversion run: the model loaded in the TensorFlow worker, its reference
    outputs, then each job exported, run and compared."""

    def __init__(self, source: ModelSource, jobs: list[Job], out: Path, opts: CheckOptions, say: Progress,
                 pool: WorkerPool) -> None:
        self.given = source  # what the user named; the manifest records this
        self.source = source  # what the workers load (may carry a weights snapshot)
        self.jobs, self.out, self.opts, self.say, self.pool = jobs, out, opts, say, pool
        self.calibration_source: str | None = None
        self.eval_source: str | None = None
        self.float_onnx: str | None = None
        self.float_saved_model: str | None = None
        self.staged: list[tuple[Job, ArtifactResult, Path]] = []
        self.calibration: Any = None
        self.eval: Any = None
        self.eval_reference: tuple[str, float] | None = None
        self.eval_refs: dict[str, tuple[str, float]] = {}  # per output name
        self.golden: dict[str, np.ndarray] | None = None
        self.golden_reference: Comparison | None = None
        self.profiles: list[Any] = []
        self.device_workers: Any = None
        self.feeds2: dict[str, np.ndarray] | None = None  # a second check size, for open dimensions
        self.reference2: dict[str, np.ndarray] | None = None
        self.check_shapes: dict[str, list[int]] = {}
        self.check_batch = 1
        self.float_tflite: str | None = None
        self.text_reference: dict[str, np.ndarray] | None = None
        self.run_files: dict[str, bytes] = {}  # written beside the artifacts (preprocessing.json)
        self.outdir = OutDir(out)
        self.truth: dict[str, np.ndarray] | None = None  # the float64 twin's outputs, when it has one
        self.truth_note: str | None = None  # why float rows are judged by the fixed bound only

    def _tf(self, func: str, *args: Any, tag: str, **kw: Any) -> Any:
        return self.pool.tf.call(f"edgekit.tasks:{func}", self.source.to_json(), *args,
                                 timeout=self.opts.timeout, tag=tag, **kw)

    def _load_data(self, spec: ModelSpec) -> None:
        """Calibration and labelled data, checked against the model before anything is written."""
        if self.calibration_source and any(j.recipe and j.recipe.needs_calibration for j in self.jobs):
            from edgekit.quantize.calibration import load_calibration

            samples = max(j.recipe.calibration_samples for j in self.jobs if j.recipe)
            self.calibration = load_calibration(self.calibration_source, spec.inputs, samples, self.opts.seed)
        if self.eval_source:
            from edgekit.validate.metrics import load_eval_data

            self.eval = load_eval_data(self.eval_source, spec.inputs, self.opts.seed)

    def execute(self, arrays: Mapping[str, np.ndarray] | None, label: str, scratch: str, t_start: float) -> ConvertResult:
        from edgekit.validate.metrics import headline, reference_metrics

        self.scratch = scratch
        self.say(f"loading {self.source.display}")
        spec = ModelSpec.from_json(self._tf("inspect_model", tag="load", on_progress=self.say, heartbeat_s=2.0))
        for m in (self.opts.atol, self.opts.rtol):
            bad = [k for k in m if k is not None and k not in spec.output_names]
            if bad:
                raise errors.InputError(f"tolerance given for unknown output {bad}; the model's outputs are {spec.output_names}")
        self._load_data(spec)
        if arrays is None and (self.eval is not None or (self.calibration is not None and self.calibration.meaningful)):
            # Quantized models are only meaningful on the data they were calibrated for: random
            # inputs far outside the calibrated ranges would fail a correct int8 conversion.
            src = self.eval.inputs if self.eval is not None else self.calibration.arrays
            n = min(CHECK_SAMPLES, int(next(iter(src.values())).shape[0]))
            arrays = {k: v[:n] for k, v in src.items()}
            label = f"{n} samples of " + ("--eval-data" if self.eval is not None else "--calibration") + " data"
        text = self._text_feeds(spec, arrays, label) if spec.preprocessing else None
        if text is not None:
            feeds, feeds_info = text
        elif arrays is not None:
            feeds = bind(arrays, spec.inputs)
            feeds_info: dict[str, Any] = {"source": label, "batch": int(next(iter(feeds.values())).shape[0])}
        else:
            o = self.opts
            from edgekit.memguard import check_feeds as check_feed_memory

            check_feed_memory(spec.inputs, o.batch_size, o.shapes)
            feeds = random_feeds(spec.inputs, batch=o.batch_size, seed=o.seed, shapes=o.shapes, max_length=spec.max_length)
            feeds_info = {"source": "random", "seed": o.seed, "batch": o.batch_size,
                          "distribution": {s.name: describe_distribution(s) for s in spec.inputs}}
            if any(s.variable_dims and s.name not in o.shapes for s in spec.inputs):
                # a second size proves that artifacts keeping open dimensions really do
                self.feeds2 = random_feeds(spec.inputs, batch=o.batch_size, seed=o.seed, shapes=o.shapes,
                                           max_length=spec.max_length, second=True)
                feeds_info["second_shapes"] = {k: list(v.shape) for k, v in self.feeds2.items()}
        feeds_info["shapes"] = {k: list(v.shape) for k, v in feeds.items()}
        check_feeds(feeds, self.opts.allow_nonfinite_inputs)
        self.check_shapes = {s.name: list(feeds[s.name].shape[1:]) for s in spec.inputs if s.variable_dims}
        self.check_batch = int(next(iter(feeds.values())).shape[0])
        if self.source.built_by_code:
            # Code-built models start from random weights: pin them so that a worker restarted
            # after a crash rebuilds the very model every artifact of this run comes from.
            snap = os.path.join(scratch, "snapshot.weights.h5")
            self.source = ModelSource(**self._tf("snapshot_weights", snap, tag="snapshot"))
        self.say(f"reference: {self.source.display} on {feeds_info['source']} inputs, batch {feeds_info['batch']}")
        reference, ref_latency = self._tf("reference", feeds, self.opts.repeats, tag="reference")
        if self.feeds2 is not None:
            self.reference2, _ = self._tf("reference", self.feeds2, 0, tag="reference:second-size")
        if self.text_reference is not None:
            reference = self.text_reference  # the whole model, strings in: what the exported pair must match
        self.truth, feeds_info["truth"], self.truth_note = reference_truth(
            self._tf, feeds, reference, tolerances_for("float32", spec, self.opts.atol, self.opts.rtol), self.opts.truth,
            self.say)
        if self.golden is not None:
            self.golden_reference = compare(self.golden, reference,
                                            tolerances_for("float32", spec, self.opts.atol, self.opts.rtol))
            self.say("model against golden outputs: " + ("agrees" if self.golden_reference else
                                                         "; ".join(self.golden_reference.failures())))
        if self.eval is not None:
            ref_eval, _ = self._tf("reference", self.eval.inputs, 0, tag="reference:eval")
            self.eval_refs = reference_metrics(ref_eval, self.eval, spec.output_names)
            self.eval_reference = headline(self.eval_refs)
            self.say(f"model on {self.eval.description}: {self.eval_reference[0]} {self.eval_reference[1]:.4g}")

        staging = self.outdir.open()
        try:
            rows: list[ArtifactResult] = []
            auto_done: str | None = None
            for i, job in enumerate(self.jobs, 1):
                prefix = f"[{i}/{len(self.jobs)}] {job.label}"
                if self.opts.auto and job.recipe and job.recipe.family == "tflite" and auto_done:
                    row = ArtifactResult(job.format, job.filename, job.recipe, runtime=job.runtime, status=SKIPPED,
                                         error=f"not needed: the smaller {auto_done} passed")
                    self.say(f"{prefix}: skipped ({row.error})")
                    rows.append(row)
                    continue
                row = self._one(job, prefix, spec, feeds, reference, staging)
                if self.opts.auto and job.recipe and job.recipe.family == "tflite":
                    if row.status == PASS:
                        auto_done = job.recipe.mode
                    elif row.status == MISMATCH:
                        row.status = REJECTED  # auto keeps only the artifact it chose
                        self.staged = [t for t in self.staged if t[1] is not row]
                rows.append(row)
            self._describe_staged(staging)
            cal = self.calibration
            result = ConvertResult(
                self.given, spec, self.out, rows, feeds_info, ref_latency, self.out / "manifest.json",
                time.perf_counter() - t_start,
                calibration=None if cal is None else {"source": self.calibration_source, "description": cal.description,
                                                      "samples": cal.count, "meaningful": cal.meaningful},
                eval_info=None if self.eval is None else {"source": self.eval_source, "description": self.eval.description,
                                                          "metric": self.eval_reference[0], "model": self.eval_reference[1],
                                                          "max_accuracy_drop": self.opts.max_accuracy_drop,
                                                          "outputs": {n: {"metric": m, "model": v}
                                                                      for n, (m, v) in self.eval_refs.items()}},
                feeds=feeds, reference=reference, golden_reference=self.golden_reference,
                devices=[{**p.to_json(), **({"self_test": self.device_workers.self_tests.get(p.name)}
                                            if self.device_workers is not None else {})} for p in self.profiles],
            )
            from edgekit.report.manifest import write_manifest

            # The new manifest is written (in staging) before anything of the previous output
            # is touched: a full disk or a permission error stops the run here, leaving the
            # earlier output intact.
            staged_manifest = staging / "manifest.json"
            try:
                write_manifest(result, staged_manifest)
                self.outdir.publish(self._staged_names(staging), staged_manifest)
            except OSError as exc:
                raise errors.WriteFailure(f"cannot write the output to {self.out}: {exc.strerror}") from None
        finally:
            self.outdir.close()
        return result

    def _text_feeds(self, spec: ModelSpec, arrays: Mapping[str, np.ndarray] | None,
                    label: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """Check inputs for a model whose string inputs feed TextVectorization layers: sample
        texts (or the user's) tokenized by ``edgekit.text`` in numpy, and as the reference the
        whole Keras model on the same texts. None when the tokenizer cannot stand in."""
        import json

        from edgekit.text import FILENAME, TextVectorizer, sample_texts

        vecs = [TextVectorizer.from_json(p) for p in spec.preprocessing if "vocabulary" in p]
        if not vecs or len(vecs) != len(spec.preprocessing):
            return None
        given = {k: [str(x) for x in np.asarray(v).ravel()] for k, v in (arrays or {}).items()
                 if np.asarray(v).dtype.kind in "USO"}
        batch = len(next(iter(given.values()))) if given else max(self.opts.batch_size, 8)
        texts = {v.input: given.get(v.input) or sample_texts(v, batch, self.opts.seed) for v in vecs}
        feeds = {v.feeds: v(texts[v.input]) for v in vecs}
        others = [s for s in spec.inputs if s.name not in feeds]
        rest = (bind({k: a for k, a in (arrays or {}).items() if k not in given}, tuple(others)) if arrays and others
                else random_feeds(tuple(others), batch=batch, seed=self.opts.seed) if others else {})
        feeds.update(rest)
        ref, keras_ids = self._tf("string_reference", texts, rest, tag="reference:text")
        for v in vecs:
            bad = int(np.sum(np.any(keras_ids[v.feeds] != feeds[v.feeds], axis=1)))
            if keras_ids[v.feeds].shape != feeds[v.feeds].shape or bad:
                self.say(f"{v.layer}: the numpy tokenizer differs from the Keras layer on {bad} of {batch} texts: "
                         "the artifacts are checked on token ids only")
                return None
        self.text_reference = ref
        self.run_files[FILENAME] = json.dumps({"inputs": [v.to_json() for v in vecs]}, indent=1).encode()
        info = {"source": ("given texts" if given else f"{batch} sample texts from the vocabulary") + " (through "
                + ", ".join(v.layer for v in vecs) + ")", "batch": batch, "texts": texts,
                "preprocessing": {"file": FILENAME, "tokenizer_matches_keras": True}}
        return feeds, info

    def _export(self, job: Job, staged: Path, path: str = "") -> dict[str, Any]:
        """Produce ``staged`` for ``job`` (TFLite and float formats in the TensorFlow worker,
        ONNX quantization in the runtime worker from a float ONNX of the same model)."""
        recipe = job.recipe
        cal = self.calibration.arrays if (recipe and recipe.needs_calibration and self.calibration) else None
        if job.format == "onnx" and recipe is not None:
            if self.float_onnx is None:
                path = os.path.join(self.scratch, "float.onnx")
                self._tf("export", "onnx", path, {"opset": self.opts.opset}, self.scratch, tag="export:onnx")
                self.float_onnx = path
            return self.pool.rt.call("edgekit.quantize.onnx_quant:quantize", self.float_onnx, str(staged),
                                     recipe.to_json(), cal, timeout=self.opts.timeout, tag=f"export:{job.label}")
        if job.format == "onnx":
            options: dict[str, Any] = {"opset": self.opts.opset, "path": path or None, "tflite_file": self.float_tflite,
                                       "check_shapes": self.check_shapes, "check_batch": self.check_batch}
        elif job.format == "tflite":
            options = {"recipe": recipe.to_json() if recipe else None, "calibration": cal,
                       "saved_model_dir": self.float_saved_model, "check_shapes": self.check_shapes}
        else:
            options = {}
        return self._tf("export", job.format, str(staged), options, self.scratch, tag=f"export:{job.label}",
                        on_progress=self.say)

    def _one(self, job: Job, prefix: str, spec: ModelSpec, feeds: dict[str, np.ndarray],
             reference: dict[str, np.ndarray], staging: Path) -> ArtifactResult:
        """One row: the format's export paths tried in order until one yields an artifact
        that passes its check (most formats have one path)."""
        paths = FORMATS[job.format].paths if job.recipe is None else ("",)
        tried: list[str] = []
        for i, path in enumerate(paths):
            row, staged = self._attempt(job, prefix, spec, feeds, reference, staging, path)
            if row.status in (PASS, SKIPPED) or i == len(paths) - 1:
                break
            tried.append(f"{path} ({row.stage or 'convert'}: {row.error})")
            self.say(f"{prefix}: the {path} path failed; trying {paths[i + 1]}")
        if len(paths) > 1:
            row.meta["export_path"] = path
        if tried:
            row.meta["paths_tried"] = tried
            if row.status == PASS:
                row.notes.append(f"produced by the {path} path; earlier paths failed: {'; '.join(tried)}")
            else:
                row.error = f"{row.error}; earlier paths failed: {'; '.join(tried)}"
        if staged is not None:
            self.staged.append((job, row, staged))
            if job.recipe is None and job.format == "onnx":
                self.float_onnx = str(staged)
            if job.recipe is None and job.format in ("saved_model", "tflite") and row.status == PASS:
                # checked: TFLite may convert from the SavedModel, ONNX from the TFLite file
                setattr(self, f"float_{job.format}", str(staged))
            self.say(f"{prefix}: {row.status}" + (f" ({row.error})" if row.error else ""))
        return row

    def _attempt(self, job: Job, prefix: str, spec: ModelSpec, feeds: dict[str, np.ndarray],
                 reference: dict[str, np.ndarray], staging: Path, path: str) -> tuple[ArtifactResult, Path | None]:
        info = FORMATS[job.format]
        row = ArtifactResult(job.format, job.filename, job.recipe, runtime=job.runtime,
                             tolerances=tolerances_for(job.policy, spec, self.opts.atol, self.opts.rtol))
        if info.needs_keras_architecture and self.source.kind == "saved_model":
            row.status, row.error = SKIPPED, "input is a SavedModel, which holds no Keras architecture"
            self.say(f"{prefix}: skipped ({row.error})")
            return row, None
        missing = unavailable_reason(job.runtime)
        if missing:
            row.status, row.stage, row.error = ERROR, "run", f"runtime {job.runtime} unavailable: {missing}"
            self.say(f"{prefix}: {row.error}")
            return row, None
        staged = staging / job.filename
        self.say(f"{prefix}: converting" + (f" ({path})" if path else ""))
        try:
            row.meta = self._export(job, staged, path)
            row.convert_s = row.meta.pop("convert_s", None)
            row.notes.extend(row.meta.pop("notes", []))
        except errors.WriteFailure:
            raise  # out of space or not writable: stop the run, leave the earlier output as it is
        except errors.EdgekitError as exc:
            row.status, row.stage, row.error = ERROR, "convert", str(exc).replace(str(staging), str(self.out))
            if job.format == "h5":
                return self._h5_not_applicable(row, prefix), None
            self.say(f"{prefix}: conversion failed: {row.error}")
            return row, None
        if job.recipe and job.recipe.needs_calibration and self.calibration and not self.calibration.meaningful:
            row.notes.append("calibrated on random data: its accuracy is NOT meaningful")
        if job.format == "tflite" and self.opts.target_runtime is not None:
            from edgekit.runtimes.compat import incompatibilities
            from edgekit.runtimes.tflite_ops import list_ops

            t = self.opts.target_runtime
            bad = incompatibilities(list_ops(staged.read_bytes()), t)
            if bad:
                row.status, row.stage = ERROR, "compat"
                row.error = f"would not run on {t['runtime']} {t['version']}: {'; '.join(bad)}"
                self.say(f"{prefix}: {row.error}")
                return row, None  # not published: the file is unusable where it is meant to run
            row.notes.append(f"every operator version runs on {t['runtime']} {t['version']}")
        self.say(f"{prefix}: running in {job.runtime}")
        worker = self.pool.tf if RUNTIMES[job.runtime].worker == "tf" else self.pool.rt
        run_opts: dict[str, Any] = {"unsafe": True} if (self.source.unsafe and worker is self.pool.tf) else {}
        if worker is self.pool.tf and job.format in ("keras", "h5", "weights"):
            run_opts["expect_names"] = [spec.input_names, spec.output_names]
            if spec.custom_classes:
                run_opts["custom_classes"] = list(spec.custom_classes)
        try:
            res = worker.call("edgekit.tasks:run_artifact", job.runtime, str(staged), feeds, self.opts.repeats,
                              run_opts, timeout=self.opts.timeout, tag=f"run:{job.label}")
            if self.eval is not None:
                ev = worker.call("edgekit.tasks:run_artifact", job.runtime, str(staged), self.eval.inputs, 0,
                                 run_opts, timeout=self.opts.timeout, tag=f"eval:{job.label}")
        except errors.WriteFailure:
            raise  # out of space or not writable: stop the run, leave the earlier output as it is
        except errors.EdgekitError as exc:
            # name the file where the user will find it, not its staging path
            row.status, row.stage, row.error = ERROR, "run", str(exc).replace(str(staging), str(self.out))
            if job.format == "h5":
                return self._h5_not_applicable(row, prefix), None
        else:
            row.latency = res["latency"]
            row.comparison = judge(compare(reference, res["outputs"], row.tolerances), reference, res["outputs"], self.truth)
            if self.truth_note and not any(t.quality for t in row.tolerances.values()):
                row.notes.append(self.truth_note)
            if self.golden is not None:
                row.golden = compare(self.golden, res["outputs"], row.tolerances)
            for prof in self.profiles[1:]:
                row.devices[prof.name] = self._on_device(prof, job, prefix, staged, feeds, reference, res["outputs"], row)
            row.status = PASS if row.comparison else MISMATCH
            if not row.comparison:
                row.stage, row.error = "compare", "; ".join(row.comparison.failures())
            elif self.feeds2 is not None and not row.meta.get("fixed_shapes"):
                self._second_size(job, row, worker, staged, run_opts)
            row.notes.extend(res.get("notes", []))
            if self.eval is not None:
                self._judge_task(row, ev["outputs"])
        return row, staged

    def _h5_not_applicable(self, row: ArtifactResult, prefix: str) -> ArtifactResult:
        """Legacy HDF5 cannot represent every Keras 3 model (keras.ops calls in a graph, some
        registered classes): a file Keras cannot write or read back is n/a, not a failure."""
        row.status, row.stage = SKIPPED, ""
        row.error = f"legacy HDF5 cannot hold this model ({row.error}); ship model.keras"
        self.say(f"{prefix}: n/a ({row.error})")
        return row

    def _second_size(self, job: Job, row: ArtifactResult, worker: Any, staged: Path, run_opts: dict[str, Any]) -> None:
        """Run an artifact that keeps open dimensions at the second check size too."""
        assert self.feeds2 is not None and self.reference2 is not None
        shapes = {k: list(v.shape) for k, v in self.feeds2.items()}
        try:
            res = worker.call("edgekit.tasks:run_artifact", job.runtime, str(staged), self.feeds2, 0, run_opts,
                              timeout=self.opts.timeout, tag=f"run:{job.label}:second-size")
        except errors.WriteFailure:
            raise
        except errors.EdgekitError as exc:
            row.status, row.stage = MISMATCH, "second size"
            row.error = f"does not run at the second check size {shapes}: {exc}"
            return
        comp = compare(self.reference2, res["outputs"], row.tolerances)
        row.meta["second_size"] = {"shapes": shapes, "passed": bool(comp), "max_abs": comp.max_abs}
        if not comp:
            row.status, row.stage = MISMATCH, "second size"
            row.error = f"at the second check size {shapes}: " + "; ".join(comp.failures())
        else:
            row.notes.append(f"keeps open dimensions: also agrees at {shapes} (max|d| {comp.max_abs:.2g})")

    def _on_device(self, prof: Any, job: Job, prefix: str, staged: Path, feeds: dict[str, np.ndarray],
                   reference: dict[str, np.ndarray], host_out: dict[str, np.ndarray], row: ArtifactResult) -> Cell:
        """One cell: the artifact on another device, against the reference and the host."""
        from edgekit.devices.executor import DeviceWorkers

        cell = Cell(Status.NOT_APPLICABLE, prof.emulated)
        if not prof.runs(job.runtime):
            cell.error = f"{prof.name} does not run {job.runtime}"
            return cell
        if self.device_workers is None:
            self.device_workers = DeviceWorkers(self.profiles[1:], self.pool.rt, self.pool.tf)
        self.say(f"{prefix}: running on {prof.name}" + (" (emulated)" if prof.emulated else ""))
        try:
            res = self.device_workers.run(prof.name, job.runtime, str(staged), feeds, self.opts.repeats, self.opts.timeout,
                                          label=job.label)
        except errors.DeviceUnavailable as exc:
            cell.status, cell.error = Status.UNAVAILABLE, str(exc)
            self.say(f"{prefix}: {prof.name} unavailable: {exc}")
            return cell
        except errors.WriteFailure:
            raise
        except errors.EdgekitError as exc:
            cell.status, cell.error = Status.ERROR, str(exc).replace(str(staged.parent), str(self.out))
            self.say(f"{prefix}: {prof.name}: {cell.error}")
            return cell
        tols = {k: (Tolerance(*prof.tolerance[job.policy], f"device:{prof.name}") if job.policy in prof.tolerance else t)
                for k, t in row.tolerances.items()}
        cell.comparison = judge(compare(reference, res["outputs"], tols), reference, res["outputs"], self.truth)
        cell.latency = res["latency"]
        cell.status = Status.PASS if cell.comparison else Status.MISMATCH
        if not cell.comparison:
            cell.error = "; ".join(cell.comparison.failures())
        diffs = [float(np.max(np.abs(np.asarray(host_out[k], np.float64) - np.asarray(v, np.float64))))
                 if np.asarray(v).size else 0.0 for k, v in res["outputs"].items() if k in host_out]
        d = max(diffs) if diffs else None
        within = None
        if all(not t.quality for t in tols.values()):  # float artifacts: the host as the reference
            within = bool(compare({k: np.asarray(v) for k, v in host_out.items() if k in res["outputs"]},
                                  {k: v for k, v in res["outputs"].items() if k in host_out},
                                  {k: tols[k] for k in host_out if k in res["outputs"]}))
        cell.vs_host = {"max_abs": d, "bit_exact": d == 0.0, "within_tolerance": within}
        if job.recipe is not None and job.recipe.mode in ("int8", "int16x8") and job.format == "tflite" \
                and d not in (None, 0.0):  # integer-only kernels: the same integers are expected
            cell.notes.append(f"{job.recipe.mode} LiteRT is not bit-exact with the host (max|d| {d:.3g})")
        self.say(f"{prefix}: {prof.name}: {cell.status}" + (f" ({cell.error})" if cell.error else ""))
        return cell

    def _judge_task(self, row: ArtifactResult, outputs: dict[str, np.ndarray]) -> None:
        """Record the task metric of every labelled output; with --max-accuracy-drop the
        largest accuracy drop decides quantized rows."""
        from edgekit.validate.metrics import task_row

        row.task = task_row(outputs, self.eval, self.eval_refs)
        gate = self.opts.max_accuracy_drop
        if gate is None or row.recipe is None or row.comparison is None or row.comparison.error:
            return
        if row.task["drop"] <= gate:
            row.status, row.stage, row.error = PASS, "", None
            row.notes.append(f"{row.task['metric']} drop {row.task['drop']:.2f} <= {gate:g} points (gate)")
        else:
            row.status, row.stage = MISMATCH, "accuracy"
            row.error = f"{row.task['metric']} drop {row.task['drop']:.2f} points > {gate:g} (--max-accuracy-drop)"

    def _describe_staged(self, staging: Path) -> None:
        """Final path, size and sha256 of every staged artifact (before anything moves)."""
        for job, row, staged in self.staged:
            info = FORMATS[job.format]
            extras = [staging / e for e in info.extra_files if job.recipe is None and (staging / e).exists()]
            row.path = str(self.out / job.filename)
            row.size = size_of(staged) + sum(size_of(e) for e in extras)
            row.sha256 = sha256_of(staged)
            if extras:
                row.meta["extra_files"] = {e.name: sha256_of(e) for e in extras}
            if self.run_files:  # preprocessing.json: every artifact of a string model needs it
                import hashlib

                row.meta.setdefault("extra_files", {}).update(
                    {n: hashlib.sha256(d).hexdigest() for n, d in self.run_files.items()})

    def _staged_names(self, staging: Path) -> list[str]:
        """Every finished artifact and its extra files, published together at the end (the
        output directory's rules and their order: edgekit/outdir.py); run-level files
        (preprocessing.json) are written into staging here."""
        names = []
        for name, data in self.run_files.items():
            (staging / name).write_bytes(data)
            names.append(name)
        for job, row, staged in self.staged:
            names += [e for e in FORMATS[job.format].extra_files if job.recipe is None and (staging / e).exists()]
            names.append(job.filename)
        self.staged = []
        return names
