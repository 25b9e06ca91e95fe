"""The one flow: model -> every format -> each artifact run on the same named inputs ->
compared with the model -> matrix and manifest.

Runs in the parent process, which never imports TensorFlow: loading, exporting and the
TensorFlow-side checks happen in the ``tf`` worker, LiteRT and ONNX Runtime in the ``rt``
worker. A worker that crashes or hangs turns the step in flight into a failed row.

The stages, each in its own module: the settings (``edgekit.options``), the check inputs
(``edgekit.checkinputs``), the rows (``edgekit.artifacts``) and their device cells
(``edgekit.cells``), publishing (``edgekit.publish``). This module puts them in order.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from edgekit import errors
from edgekit.artifacts import ArtifactSteps, Context, Reference, RunData
from edgekit.cells import DeviceCells
from edgekit.checkinputs import CheckInputs, prepare
from edgekit.converters import FORMATS
from edgekit.feeds import load_arrays
from edgekit.fsutil import remove_path
from edgekit.models.source import ModelSource, detect
from edgekit.options import ConvertOptions
from edgekit.outdir import OutDir, check_writable as check_out_dir  # noqa: F401 - check_out_dir: API
from edgekit.publish import describe, publish
from edgekit.specs import ModelSpec
from edgekit.tolerances import check_overrides, parse_tolerance_overrides, tolerances_for  # noqa: F401 - API
from edgekit.validate import compare
from edgekit.verdict import reference_truth
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
    Job,
    Status,
    build_jobs,
)

Progress = Callable[[str], None]


def check_memory(source: ModelSource) -> None:
    """Refuse, with numbers, a model whose conversion would not fit in available memory, sized
    from what the file declares (edgekit/memguard.py). Code-built models are sized once built."""
    from edgekit.memguard import check_model

    check_model(source.kind, source.location)


def convert(model: str, out_dir: str | os.PathLike[str], options: ConvertOptions | None = None, *,
            input_arrays: Mapping[str, np.ndarray] | None = None, input_label: str = "given arrays",
            golden_outputs: Mapping[str, np.ndarray] | None = None, progress: Progress | None = None,
            pool: WorkerPool | None = None, **settings: Any) -> ConvertResult:
    """Export ``model`` to every format of ``options`` under ``out_dir`` and check each artifact.

    ``options`` holds the run's settings (``edgekit.options.ConvertOptions``); keyword
    ``settings`` build one instead (``formats="tflite,onnx", quantize="int8", ...``). Inputs
    are ``options.inputs`` (an .npz/.npy path), else ``input_arrays`` (named arrays,
    described as ``input_label``), else inputs valid for the model, drawn from a seed.
    ``golden_outputs`` (stored outputs for ``input_arrays``) adds a second comparison of the
    live model and of every artifact against them. Bad input raises an ``EdgekitError``
    before anything is written. Conversion and runtime failures (crashes included) become
    rows with status ``error``; ``ConvertResult.exit_code`` sums them up.
    """
    if options is not None and settings:
        raise TypeError("pass either options or keyword settings, not both")
    opts = (options or ConvertOptions.of(**settings)).check()
    t_start = time.perf_counter()
    source = detect(model, unsafe=opts.unsafe, custom_objects=opts.custom_objects)
    check_memory(source)
    from edgekit.devices import resolve as resolve_devices

    profiles = resolve_devices(list(opts.devices) if opts.devices else None)
    jobs = build_jobs(list(opts.formats), opts.recipes())
    out = Path(out_dir)
    recipe_file = opts.quantize_recipe if isinstance(opts.quantize_recipe, str) else None
    outd = _out_dir(out, source, jobs, opts.force, [opts.inputs, opts.calibration, opts.eval_data, recipe_file])
    arrays, label = _given(opts, source, input_arrays, input_label)
    _check_calibration_early(opts, source)
    if golden_outputs is not None and input_arrays is None:
        raise errors.InputError("golden outputs need the inputs they were computed from")
    target = None
    if opts.target_runtime:
        from edgekit.runtimes.compat import find_table

        target = find_table(opts.target_runtime)
    pool = pool or default_pool()
    pool.start()  # both workers import their libraries while the inputs are checked
    run = _Run(_traced(source, opts, arrays), jobs, opts, target, outd, pool, progress or (lambda _m: None),
               DeviceCells(profiles, pool))
    golden = None if golden_outputs is None else {k: np.asarray(v) for k, v in golden_outputs.items()}
    try:
        return run.execute(arrays, label, golden, t_start)
    finally:
        run.devices.close()


def _out_dir(out: Path, source: ModelSource, jobs: list[Job], force: bool, data: list[str | None]) -> OutDir:
    """The run's output directory, checked before any work (the input files are protected)."""
    planned = [n for j in jobs for n in (j.filename, *(FORMATS[j.format].extra_files if j.recipe is None else ()))]
    from edgekit.generation import jobs_for

    planned += [j.filename for j in jobs_for([j.format for j in jobs], [j.recipe for j in jobs if j.recipe])]
    inputs = [] if source.built_by_code else [source.location]
    outd = OutDir(out, force=force, protected=inputs + [d for d in data if d and os.path.exists(d)], planned=planned)
    outd.check()
    return outd


def _given(opts: ConvertOptions, source: ModelSource, input_arrays: Mapping[str, np.ndarray] | None,
           input_label: str) -> tuple[dict[str, np.ndarray] | None, str]:
    """The check inputs the caller gave (an --inputs file, read once after its memory check)."""
    if opts.inputs:
        from edgekit.precheck import check_inputs_early

        arrays = load_arrays(opts.inputs)
        check_inputs_early(source.kind, source.location, arrays)
        return arrays, os.path.abspath(opts.inputs)
    if input_arrays is not None:
        return dict(input_arrays), input_label
    return None, "random"


def _check_calibration_early(opts: ConvertOptions, source: ModelSource) -> None:
    """Calibration arrays whose names or shapes do not fit a .keras file's declared inputs
    fail before a worker imports TensorFlow, as --inputs does (labels in the file are not
    inputs, as in edgekit.quantize.calibration)."""
    cal = opts.calibration
    if not cal or source.kind != "keras" or not cal.lower().endswith((".npz", ".npy")) or not os.path.isfile(cal):
        return
    from edgekit.feeds import bind
    from edgekit.precheck import keras_input_specs
    from edgekit.quantize.calibration import without_labels

    declared = keras_input_specs(source.location)
    if declared is not None:
        bind(without_labels(load_arrays(cal), declared), declared, source="--calibration")


def _traced(source: ModelSource, opts: ConvertOptions, arrays: Mapping[str, np.ndarray] | None) -> ModelSource:
    """A subclassed model that recorded no build shape is traced on --shape, else on the
    shapes of the given --inputs arrays."""
    trace = dict(opts.shapes) or ({k: tuple(v.shape[1:]) for k, v in arrays.items()} if opts.inputs and arrays else {})
    return dataclasses.replace(source, shapes={k: list(v) for k, v in trace.items()}) if trace else source


class _Run:
    """One conversion run: the model loaded in the TensorFlow worker, its reference outputs,
    then each job exported, run and compared, then everything published at once."""

    def __init__(self, source: ModelSource, jobs: list[Job], opts: ConvertOptions, target: dict[str, Any] | None,
                 outd: OutDir, pool: WorkerPool, say: Progress, devices: DeviceCells) -> None:
        self.given = source  # what the user named; the manifest records this
        self.source = source  # what the workers load (may carry a weights snapshot)
        self.jobs, self.opts, self.target, self.outd = jobs, opts, target, outd
        self.pool, self.say, self.devices = pool, say, devices

    def _tf(self, func: str, *args: Any, tag: str, **kw: Any) -> Any:
        kw.setdefault("on_progress", self.say)  # a heartbeat line during long steps (the float64 twin, ...)
        return self.pool.tf.call(f"edgekit.tasks:{func}", self.source.to_json(), *args,
                                 timeout=self.opts.timeout, tag=tag, **kw)

    def _data(self, spec: ModelSpec) -> RunData:
        """Calibration and labelled data, checked against the model before anything is written."""
        o, data = self.opts, RunData(self.opts.calibration, self.opts.eval_data)
        recipes = [j.recipe for j in self.jobs if j.recipe]
        if o.calibration and any(r.needs_calibration for r in recipes):
            from edgekit.quantize.calibration import load_calibration

            data.calibration = load_calibration(o.calibration, spec.inputs, max(r.calibration_samples for r in recipes), o.seed)
        if o.eval_data:
            from edgekit.validate.metrics import load_eval_data

            data.eval = load_eval_data(o.eval_data, spec.inputs, o.seed)
        return data

    def execute(self, arrays: Mapping[str, np.ndarray] | None, label: str, golden: dict[str, np.ndarray] | None,
                t_start: float) -> ConvertResult:
        scratch = tempfile.mkdtemp(prefix="edgekit-run-")
        try:
            self.say(f"loading {self.source.display}")
            spec = ModelSpec.from_json(self._tf("inspect_model", tag="load", on_progress=self.say, heartbeat_s=2.0))
            check_overrides(spec, self.opts.atol, self.opts.rtol)
            from edgekit.generation import layout_for

            layout, no_layout = layout_for(self._tf, self.opts)  # before anything is written
            tokenizer_files = {}
            if self.opts.tokenizer:
                from edgekit.text_tokenizer import output_files

                tokenizer_files = output_files(self.opts.tokenizer)
            data = self._data(spec)
            inputs = prepare(spec, arrays, label, self.opts, data, self._tf, self.say)
            if self.source.built_by_code:
                # Code-built models start from random weights: pin them so that a worker restarted
                # after a crash rebuilds the very model every artifact of this run comes from.
                snap = os.path.join(scratch, "snapshot.weights.h5")
                self.source = ModelSource(**self._tf("snapshot_weights", snap, tag="snapshot"))
            inputs.run_files.update(tokenizer_files)
            ref = self._reference(spec, inputs, data, golden)
            staging = self.outd.open()
            try:
                ctx = Context(self.source, spec, self.opts, self.target, inputs, ref, data, self.pool, self.say,
                              self.outd.path, scratch, staging, self.devices)
                steps = ArtifactSteps(ctx)
                rows = self._rows(steps)
                rows += self._generative_rows(ctx, steps, layout, no_layout)
                describe(steps.staged, staging, self.outd.path, inputs.run_files)
                result = self._result(spec, rows, inputs, ref, data, time.perf_counter() - t_start)
                publish(result, steps.staged, staging, self.outd, inputs.run_files)
            finally:
                self.outd.close()
            return result
        finally:
            remove_path(scratch)

    def _reference(self, spec: ModelSpec, inputs: CheckInputs, data: RunData,
                   golden: dict[str, np.ndarray] | None) -> Reference:
        """The model's own outputs on the check inputs, and everything else artifacts are judged by."""
        from edgekit.validate.metrics import headline, reference_metrics

        self.say(f"reference: {self.source.display} on {inputs.info['source']} inputs, batch {inputs.info['batch']}")
        outputs, latency = self._tf("reference", inputs.feeds, self.opts.repeats, tag="reference")
        ref = Reference(inputs.text_reference or outputs, latency, golden=golden)  # strings in: the whole model
        if inputs.feeds2 is not None:
            ref.outputs2, _ = self._tf("reference", inputs.feeds2, 0, tag="reference:second-size")
        float_tols = tolerances_for("float32", spec, self.opts.atol, self.opts.rtol)
        ref.truth, inputs.info["truth"], ref.truth_note = reference_truth(
            self._tf, inputs.feeds, ref.outputs, float_tols, self.opts.truth, self.say)
        if golden is not None:
            ref.golden_comparison = compare(golden, ref.outputs, float_tols)
            self.say("model against golden outputs: " + ("agrees" if ref.golden_comparison else
                                                         "; ".join(ref.golden_comparison.failures())))
        if data.eval is not None:
            ref_eval, _ = self._tf("reference", data.eval.inputs, 0, tag="reference:eval")
            ref.eval_refs = reference_metrics(ref_eval, data.eval, spec.output_names)
            ref.eval_headline = headline(ref.eval_refs)
            self.say(f"model on {data.eval.description}: {ref.eval_headline[0]} {ref.eval_headline[1]:.4g}")
        return ref

    def _rows(self, steps: ArtifactSteps) -> list[ArtifactResult]:
        """Every job in order (``--quantize auto`` is one job: a per-layer search, see
        ``edgekit.quantize.search``)."""
        return [steps.row(job, f"[{i}/{len(self.jobs)}] {job.label}") for i, job in enumerate(self.jobs, 1)]

    def _generative_rows(self, ctx: Context, steps: ArtifactSteps, layout: dict[str, Any] | None,
                         no_layout: str | None) -> list[ArtifactResult]:
        """A causal LM's decoders with a KV cache, checked by generating (edgekit.generation)."""
        from edgekit.generation import GenerativeSteps, unknown_rows

        if no_layout:
            self.say(f"generation: n/a ({no_layout})")
            return unknown_rows(self.opts, no_layout)
        return [] if layout is None else GenerativeSteps(ctx, steps, layout).rows()

    def _result(self, spec: ModelSpec, rows: list[ArtifactResult], inputs: CheckInputs, ref: Reference,
                data: RunData, elapsed: float) -> ConvertResult:
        cal, ev = data.calibration, data.eval
        return ConvertResult(
            self.given, spec, self.outd.path, rows, inputs.info, ref.latency, self.outd.path / "manifest.json", elapsed,
            calibration=None if cal is None else {"source": data.calibration_source, "description": cal.description,
                                                  "samples": cal.count, "meaningful": cal.meaningful},
            eval_info=None if ev is None else {
                "source": data.eval_source, "description": ev.description, "metric": ref.eval_headline[0],
                "model": ref.eval_headline[1], "max_accuracy_drop": self.opts.max_accuracy_drop,
                "outputs": {n: {"metric": m, "model": v} for n, (m, v) in ref.eval_refs.items()}},
            feeds=inputs.feeds, reference=ref.outputs, golden_reference=ref.golden_comparison,
            devices=self.devices.profiles_json(),
        )
