"""One artifact of a run: exported along its format's paths, run on the host and on every
device, compared with the reference, and judged on the task metric where there is one.

What differs between formats is read from the registry (``edgekit.converters.FORMATS``):
the export paths, what an export takes from earlier jobs, who quantizes, whether a failure
means "this format cannot hold the model". Nothing here branches on a format's name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit import errors
from edgekit.checkinputs import CheckInputs
from edgekit.converters import FORMATS
from edgekit.models.source import ModelSource
from edgekit.results import ArtifactResult, Job, Status
from edgekit.cells import kernel_cells
from edgekit.runtimes import RUNTIMES, checked_kernel_paths, unavailable_reason
from edgekit.specs import ModelSpec
from edgekit.tolerances import tolerances_for
from edgekit.validate import Comparison, compare
from edgekit.validate.truth import judge
from edgekit.worker import WorkerPool


@dataclass
class RunData:
    """Calibration and labelled data of a run (None where not given)."""

    calibration_source: str | None = None
    eval_source: str | None = None
    calibration: Any = None
    eval: Any = None


@dataclass
class Reference:
    """What every artifact is compared with: the model's outputs on the check inputs (and at
    the second size), the float64 truth, golden outputs, the model's task metric."""

    outputs: dict[str, np.ndarray]
    latency: dict[str, float]
    outputs2: dict[str, np.ndarray] | None = None
    truth: dict[str, np.ndarray] | None = None
    truth_note: str | None = None  # why float rows are judged by the fixed bound only
    golden: dict[str, np.ndarray] | None = None
    golden_comparison: Comparison | None = None
    eval_refs: dict[str, tuple[str, float]] = field(default_factory=dict)  # per output name
    eval_headline: tuple[str, float] | None = None


@dataclass
class Context:
    """What every step of one run shares; fixed once the reference is computed."""

    source: ModelSource
    spec: ModelSpec
    opts: Any  # ConvertOptions
    target: dict[str, Any] | None  # the --target-runtime compatibility table
    inputs: CheckInputs
    ref: Reference
    data: RunData
    pool: WorkerPool
    say: Callable[[str], None]
    out: Path
    scratch: str
    staging: Path
    devices: Any  # edgekit.cells.DeviceCells


class ArtifactSteps:
    """Produces the rows of a run, one job at a time, keeping what later jobs build on: the
    float artifacts exported (quantizers start from them) and those that passed (exporters
    convert from them)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.exported: dict[str, str] = {}
        self.exported_meta: dict[str, dict[str, Any]] = {}  # what the float export said (fixed sizes)
        self.verified: dict[str, str] = {}
        self.staged: list[tuple[Job, ArtifactResult, Path]] = []

    def row(self, job: Job, prefix: str) -> ArtifactResult:
        """One row: the format's export paths tried in order until one yields an artifact
        that passes its check (most formats have one path)."""
        paths = FORMATS[job.format].paths if job.recipe is None else job.recipe.engines
        tried: list[str] = []
        for i, path in enumerate(paths):
            row, staged = self._attempt(job, prefix, path)
            if row.status in (Status.PASS, Status.SKIPPED) or i == len(paths) - 1:
                break
            tried.append(f"{path} ({row.stage or 'convert'}: {row.error})")
            self.ctx.say(f"{prefix}: the {path} path failed; trying {paths[i + 1]}")
        if len(paths) > 1:
            row.meta["export_path"] = path
        if tried:
            row.meta["paths_tried"] = tried
            if row.status == Status.PASS:
                row.notes.append(f"produced by the {path} path; earlier paths failed: {'; '.join(tried)}")
            else:
                row.error = f"{row.error}; earlier paths failed: {'; '.join(tried)}"
        if staged is not None:
            self.staged.append((job, row, staged))
            if job.recipe is None:
                self.exported[job.format] = str(staged)
                self.exported_meta[job.format] = dict(row.meta)
                if row.status == Status.PASS:  # checked: later exports may convert from it
                    self.verified[job.format] = str(staged)
            self.ctx.say(f"{prefix}: {row.status}" + (f" ({row.error})" if row.error else ""))
        return row

    def _failed(self, row: ArtifactResult, job: Job, prefix: str, stage: str, exc: Exception) -> ArtifactResult:
        # name the file where the user will find it, not its staging path
        row.status, row.stage = Status.ERROR, stage
        row.error = str(exc).replace(str(self.ctx.staging), str(self.ctx.out))
        not_held = FORMATS[job.format].may_not_hold
        if isinstance(exc, errors.NotApplicable):  # a mode this model cannot take
            row.status, row.stage = Status.SKIPPED, ""
            self.ctx.say(f"{prefix}: n/a ({row.error})")
        elif not_held:  # a file this format cannot write or read back for the model: n/a, not a failure
            row.status, row.stage = Status.SKIPPED, ""
            row.error = not_held.format(error=row.error)
            self.ctx.say(f"{prefix}: n/a ({row.error})")
        elif stage == "convert":
            self.ctx.say(f"{prefix}: conversion failed: {row.error}")
        return row

    def _attempt(self, job: Job, prefix: str, path: str) -> tuple[ArtifactResult, Path | None]:
        ctx, info = self.ctx, FORMATS[job.format]
        row = ArtifactResult(job.format, job.filename, job.recipe, runtime=job.runtime,
                             tolerances=tolerances_for(job.policy, ctx.spec, ctx.opts.atol, ctx.opts.rtol,
                                                       device=ctx.devices.profiles[0]))  # the host's profile
        if info.needs_keras_architecture and ctx.source.kind == "saved_model":
            row.status, row.error = Status.SKIPPED, "input is a SavedModel, which holds no Keras architecture"
            ctx.say(f"{prefix}: skipped ({row.error})")
            return row, None
        missing = unavailable_reason(job.runtime)
        if missing:
            row.status, row.stage, row.error = Status.ERROR, "run", f"runtime {job.runtime} unavailable: {missing}"
            ctx.say(f"{prefix}: {row.error}")
            return row, None
        staged = ctx.staging / job.filename
        ctx.say(f"{prefix}: converting" + (f" ({path})" if path else ""))
        try:
            row.meta = self._export(job, staged, path)
        except errors.WriteFailure:
            raise  # out of space or not writable: stop the run, leave the earlier output as it is
        except errors.EdgekitError as exc:
            return self._failed(row, job, prefix, "convert", exc), None
        row.convert_s = row.meta.pop("convert_s", None)
        row.notes.extend(row.meta.pop("notes", []))
        if row.meta.get("layers") and job.recipe and job.recipe.approach.value == "mixed":  # a precision per layer
            row.notes.append("layers: " + ", ".join(f"{x['layer']}={x['precision']}" for x in row.meta["layers"]))
        cal = ctx.data.calibration
        if job.recipe and job.recipe.needs_calibration and cal is not None and not cal.meaningful:
            row.notes.append("calibrated on random data: its accuracy is NOT meaningful")
        if info.op_versions and ctx.target is not None and not self._runs_on_target(row, staged, prefix):
            return row, None  # not published: the file is unusable where it is meant to run
        if not self._run_and_judge(job, row, staged, prefix):
            return row, None
        return row, staged

    def _export(self, job: Job, staged: Path, path: str = "") -> dict[str, Any]:
        """Produce ``staged`` for ``job``: in the TensorFlow worker by the format's exporter,
        or, for a format with a quantizer, in the runtime worker from its float artifact."""
        ctx, info, recipe = self.ctx, FORMATS[job.format], job.recipe
        cal = ctx.data.calibration
        arrays = cal.arrays if (recipe and recipe.needs_calibration and cal is not None) else None
        if recipe is not None and path and path != recipe.engine:  # another engine's path for this mode
            recipe = replace(recipe, engine=path)
            job = replace(job, recipe=recipe)
        if recipe is not None and info.quantizer and recipe.from_float:
            base = self.exported.get(job.format)
            if base is None:
                base = os.path.join(ctx.scratch, "float" + Path(info.filename).suffix)
                made = self._tf_export(job.format, base, "", None, f"export:{job.format}")
                self.exported[job.format] = base
                self.exported_meta[job.format] = {k: v for k, v in made.items() if k != "notes"}
            meta = ctx.pool.rt.call(info.quantizer, base, str(staged), recipe.to_json(), arrays,
                                    self._quantize_context(job), timeout=ctx.opts.timeout,
                                    tag=f"export:{job.label}", on_progress=ctx.say)
            fixed = self.exported_meta.get(job.format, {}).get("fixed_shapes")
            if fixed:  # the float file it came from was converted at a fixed size
                meta["fixed_shapes"] = fixed
                meta.setdefault("notes", []).append("quantized from the float file, exported at a fixed size")
            return meta
        meta = self._tf_export(job.format, str(staged), path, job, f"export:{job.label}", arrays)
        if recipe is not None:
            meta["engine"] = "converter"
            meta.setdefault("notes", []).append("made by the TFLite converter's post-training quantization")
        return meta

    def _quantize_context(self, job: Job) -> dict[str, Any]:
        """What a quantizer may use beyond the float file: the check inputs and the model's
        outputs on them (to choose between variants, or per layer), the Keras layer names
        (recipes and reports name layers), and the run's gate and kernel paths."""
        ctx = self.ctx
        out: dict[str, Any] = {"feeds": ctx.inputs.feeds, "reference": ctx.ref.outputs,
                               "layers": list(ctx.spec.layers), "kernel_layers": list(ctx.spec.kernel_layers),
                               "kinds": {o.name: o.role for o in ctx.spec.outputs if o.role}}
        if ctx.opts.max_accuracy_drop is not None and ctx.data.eval is not None:
            out["gate"] = {"max_drop": ctx.opts.max_accuracy_drop, "eval": ctx.data.eval, "refs": ctx.ref.eval_refs}
        if "reference" in checked_kernel_paths(job.runtime, ctx.opts.kernels):
            out["no_int4"] = ("auto: int4 left out, because the reference kernels are checked and have no blockwise "
                              "int4 kernel (they return zeros); pass --kernels xnnpack to allow it")
        return out

    def _tf_export(self, fmt: str, dest: str, path: str, job: Job | None, tag: str, calibration: Any = None) -> Any:
        ctx = self.ctx
        options: dict[str, Any] = {
            "opset": ctx.opts.opset, "path": path or None,
            "recipe": job.recipe.to_json() if job is not None and job.recipe else None, "calibration": calibration,
            "check_shapes": ctx.inputs.open_shapes(ctx.spec), "check_batch": ctx.inputs.batch,
            **{opt: self.verified.get(src) for opt, src in FORMATS[fmt].converts_from},
        }
        return ctx.pool.tf.call("edgekit.tasks:export", ctx.source.to_json(), fmt, dest, options, ctx.scratch,
                                timeout=ctx.opts.timeout, tag=tag, on_progress=ctx.say)

    def _runs_on_target(self, row: ArtifactResult, staged: Path, prefix: str) -> bool:
        from edgekit.runtimes.compat import incompatibilities
        from edgekit.runtimes.tflite_ops import list_ops

        t = self.ctx.target
        bad = incompatibilities(list_ops(staged.read_bytes()), t)
        if bad:
            row.status, row.stage = Status.ERROR, "compat"
            row.error = f"would not run on {t['runtime']} {t['version']}: {'; '.join(bad)}"
            self.ctx.say(f"{prefix}: {row.error}")
            return False
        row.notes.append(f"every operator version runs on {t['runtime']} {t['version']}")
        return True

    def _runner(self, job: Job) -> tuple[Any, dict[str, Any]]:
        """The worker that runs ``job``'s runtime, and what it needs to load the artifact."""
        ctx = self.ctx
        in_tf = RUNTIMES[job.runtime].worker == "tf"
        worker = ctx.pool.tf if in_tf else ctx.pool.rt
        run_opts: dict[str, Any] = {"unsafe": True} if (ctx.source.unsafe and in_tf) else {}
        if in_tf and FORMATS[job.format].needs_keras_architecture:
            run_opts["expect_names"] = [ctx.spec.input_names, ctx.spec.output_names]
            if ctx.spec.custom_classes:
                run_opts["custom_classes"] = list(ctx.spec.custom_classes)
        return worker, run_opts

    def _run_and_judge(self, job: Job, row: ArtifactResult, staged: Path, prefix: str) -> bool:
        """Run the artifact on the check inputs (and the labelled data) and judge it; False
        when it could not run and is not published."""
        ctx = self.ctx
        ctx.say(f"{prefix}: running in {job.runtime}")
        worker, run_opts = self._runner(job)
        try:
            res = worker.call("edgekit.tasks:run_artifact", job.runtime, str(staged), ctx.inputs.feeds,
                              ctx.opts.repeats, run_opts, timeout=ctx.opts.timeout, tag=f"run:{job.label}")
            ev = None if ctx.data.eval is None else worker.call(
                "edgekit.tasks:run_artifact", job.runtime, str(staged), ctx.data.eval.inputs, 0, run_opts,
                timeout=ctx.opts.timeout, tag=f"eval:{job.label}")
        except errors.WriteFailure:
            raise
        except errors.EdgekitError as exc:
            self._failed(row, job, prefix, "run", exc)
            return FORMATS[job.format].may_not_hold is None
        ref = ctx.ref
        row.latency = res["latency"]
        row.comparison = judge(compare(ref.outputs, res["outputs"], row.tolerances), ref.outputs, res["outputs"], ref.truth)
        if ref.truth_note and not any(t.quality for t in row.tolerances.values()):
            row.notes.append(ref.truth_note)
        if ref.golden is not None:
            row.golden = compare(ref.golden, res["outputs"], row.tolerances)
        row.devices = ctx.devices.cells(ctx, job, row, prefix, staged, res["outputs"])
        row.status = Status.PASS if row.comparison else Status.MISMATCH
        if job.recipe is not None:
            row.kernels = kernel_cells(ctx, job, row, prefix, staged, res["outputs"])
        if not row.comparison:
            row.stage, row.error = "compare", "; ".join(row.comparison.failures())
        elif ctx.inputs.feeds2 is not None and not row.meta.get("fixed_shapes"):
            self._second_size(job, row, worker, staged, run_opts)
        row.notes.extend(res.get("notes", []))
        if ev is not None:
            self._judge_task(row, ev["outputs"])
        return True

    def _second_size(self, job: Job, row: ArtifactResult, worker: Any, staged: Path, run_opts: dict[str, Any]) -> None:
        """Run an artifact that keeps open dimensions at the second check size too."""
        feeds2, ref2 = self.ctx.inputs.feeds2, self.ctx.ref.outputs2
        assert feeds2 is not None and ref2 is not None
        shapes = {k: list(v.shape) for k, v in feeds2.items()}
        try:
            res = worker.call("edgekit.tasks:run_artifact", job.runtime, str(staged), feeds2, 0, run_opts,
                              timeout=self.ctx.opts.timeout, tag=f"run:{job.label}:second-size")
        except errors.WriteFailure:
            raise
        except errors.EdgekitError as exc:
            row.status, row.stage = Status.MISMATCH, "second size"
            row.error = f"does not run at the second check size {shapes}: {exc}"
            return
        comp = compare(ref2, res["outputs"], row.tolerances)
        row.meta["second_size"] = {"shapes": shapes, "passed": bool(comp), "max_abs": comp.max_abs}
        if not comp:
            row.status, row.stage = Status.MISMATCH, "second size"
            row.error = f"at the second check size {shapes}: " + "; ".join(comp.failures())
        else:
            row.notes.append(f"keeps open dimensions: also agrees at {shapes} (max|d| {comp.max_abs:.2g})")

    def _judge_task(self, row: ArtifactResult, outputs: dict[str, np.ndarray]) -> None:
        """Record the task metric of every labelled output; with --max-accuracy-drop the
        largest accuracy drop decides quantized rows."""
        from edgekit.validate.metrics import task_row

        row.task = task_row(outputs, self.ctx.data.eval, self.ctx.ref.eval_refs)
        gate = self.ctx.opts.max_accuracy_drop
        if gate is None or row.recipe is None or row.comparison is None or row.comparison.error:
            return
        if row.task["drop"] <= gate:
            row.status, row.stage, row.error = Status.PASS, "", None
            row.notes.append(f"{row.task['metric']} drop {row.task['drop']:.2f} <= {gate:g} points (gate)")
        else:
            row.status, row.stage = Status.MISMATCH, "accuracy"
            row.error = f"{row.task['metric']} drop {row.task['drop']:.2f} points > {gate:g} (--max-accuracy-drop)"
