"""The verdict for files edgekit did not write: ``compare(model, [artifact, ...])``.

A ``.tflite`` from TFLiteConverter or onnx2tf, an ``.onnx`` from tf2onnx or Keras, a
SavedModel, a ``.keras``/``.h5``: each runs in its runtime on the same inputs as the model,
with the same tolerance policy (fixed bound, float64 truth, non-finite positions) as
``convert``. Files written by other tools name their inputs and outputs their own way
(``serving_default_image:0``, ``Identity:0``, ``output_0``), so names are matched exactly,
then sanitized, then by position, and every match that was not exact is reported.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from edgekit import errors
from edgekit.converters import FormatInfo, format_of
from edgekit.feeds import bind, load_arrays, random_feeds
from edgekit.models.source import ModelSource, detect
from edgekit.results import ERROR, MISMATCH, PASS, ArtifactResult
from edgekit.runtimes import RUNTIMES, unavailable_reason
from edgekit.specs import ModelSpec
from edgekit.validate import compare as compare_outputs
from edgekit.validate.truth import judge
from edgekit.verdict import check_feeds, reference_truth
from edgekit.worker import WorkerPool, default_pool

def artifact_format(path: str) -> FormatInfo:
    """The registered format of an artifact path (its runtime, its default policy);
    ``InputError`` for anything else. Files run by TensorFlow compute the model's own graph ("exact"); LiteRT
    and ONNX Runtime reorder float arithmetic ("float32")."""
    p = Path(path)
    if not p.exists():
        raise errors.InputError(f"artifact {path} does not exist")
    fmt = format_of(p, trust_name=True)
    if fmt is None and p.is_dir():
        raise errors.InputError(f"{path} is a directory without saved_model.pb: pass a SavedModel, .tflite, .onnx, .keras or .h5")
    if fmt is None:
        raise errors.InputError(f"{path}: unknown artifact type {p.suffix or '(no suffix)'}; "
                                "expected .tflite, .onnx, .keras, .h5 or a SavedModel directory")
    return fmt


def sanitize(name: str) -> str:
    """``serving_default_image:0`` -> ``image``: the decorations converters add to a name."""
    n = re.sub(r":\d+$", "", name)
    n = re.sub(r"^(serving_default_|StatefulPartitionedCall_?)", "", n)
    return re.sub(r"[^0-9a-zA-Z]+", "_", n).strip("_").lower()


def match_names(artifact: list[str], model: list[str], what: str) -> tuple[dict[str, str], list[str]]:
    """Map each artifact name to a model name: exact, then sanitized, then by position.

    Returns the mapping and notes for every match that was not exact. ``InputError`` when the
    counts differ (the file does not have the model's interface)."""
    if len(artifact) != len(model):
        raise errors.InputError(f"the artifact has {len(artifact)} {what}s {artifact}, the model {len(model)} {model}")
    mapping = {a: a for a in artifact if a in model}
    notes: list[str] = []
    for a in artifact:
        if a in mapping:
            continue
        free = [m for m in model if m not in mapping.values()]
        same = [m for m in free if sanitize(m) == sanitize(a)]
        if len(same) == 1:
            mapping[a] = same[0]
            notes.append(f"{what} {a!r} bound to the model's {same[0]!r} by name")
    left_a = [a for a in artifact if a not in mapping]
    left_m = [m for m in model if m not in mapping.values()]
    for a, m in zip(left_a, left_m):
        mapping[a] = m
        if len(artifact) == 1:  # nothing else it could be
            notes.append(f"the only {what} {a!r} bound to the model's {m!r}")
        else:
            notes.append(f"{what} {a!r} bound to the model's {m!r} by POSITION (names do not match)")
    return mapping, notes


@dataclass
class CompareResult:
    source: ModelSource
    spec: ModelSpec
    rows: list[ArtifactResult]
    feeds_info: dict[str, Any]
    elapsed_s: float
    bindings: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # path -> inputs/outputs maps

    @property
    def exit_code(self) -> int:
        """1 if an artifact could not run, else 3 if any failed its tolerance, else 0."""
        if any(r.status == ERROR for r in self.rows):
            return errors.EXIT_FAILED
        if any(r.status == MISMATCH for r in self.rows):
            return errors.EXIT_TOLERANCE
        return errors.EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {"model": self.source.display, "model_spec": self.spec.to_json(), "feeds": self.feeds_info,
                "elapsed_s": self.elapsed_s, "exit_code": self.exit_code,
                "artifacts": [{**r.to_json(Path.cwd()), "path": r.path, "bindings": self.bindings.get(r.path or "")}
                              for r in self.rows]}


def _feeds(spec: ModelSpec, inputs: str | None, batch_size: int, seed: int, shapes: Mapping[str, tuple[int, ...]],
           allow_nonfinite: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if inputs:
        feeds = bind(load_arrays(inputs), spec.inputs)
        info: dict[str, Any] = {"source": str(Path(inputs).resolve())}
    else:
        feeds = random_feeds(spec.inputs, batch=batch_size, seed=seed, shapes=shapes)
        info = {"source": "random", "seed": seed,
                "distribution": "standard normal floats; integers uniform in each input's range"}
    check_feeds(feeds, allow_nonfinite)
    info["batch"] = int(next(iter(feeds.values())).shape[0])
    info["shapes"] = {k: list(v.shape) for k, v in feeds.items()}
    return feeds, info


def compare(
    model: str,
    artifacts: list[str],
    inputs: str | None = None,
    atol: Mapping[str | None, float] | None = None,
    rtol: Mapping[str | None, float] | None = None,
    policy: str | None = None,
    batch_size: int = 2,
    seed: int = 0,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    truth: bool = True,
    allow_nonfinite_inputs: bool = False,
    unsafe: bool = False,
    custom_objects: str | None = None,
    timeout: float = 600.0,
    progress: Callable[[str], None] | None = None,
    pool: WorkerPool | None = None,
) -> CompareResult:
    """Run each artifact on the model's check inputs and judge it against the model.

    ``policy`` (``float32``, ``exact``, ``float16``, ``int8``, ...) overrides the default per
    file type (``float32`` for .tflite/.onnx, ``exact`` for TensorFlow-run files); quantized
    files need it. Bad input raises an ``EdgekitError`` before anything runs; an artifact that
    cannot be loaded or run is an ``error`` row.
    """
    from edgekit.tolerances import tolerances_for

    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    formats = _formats(artifacts, policy)
    source = detect(model, unsafe=unsafe, custom_objects=custom_objects)
    pool = pool or default_pool()
    pool.start()

    def tf(func: str, *args: Any, tag: str, **kw: Any) -> Any:
        return pool.tf.call(f"edgekit.tasks:{func}", source.to_json(), *args, timeout=timeout, tag=tag, **kw)

    say(f"loading {source.display}")
    spec = ModelSpec.from_json(tf("inspect_model", tag="load"))
    _check_tolerance_names(spec, atol, rtol)
    feeds, info = _feeds(spec, inputs, batch_size, seed, dict(shapes or {}), allow_nonfinite_inputs)
    say(f"reference: {source.display} on {info['source']} inputs, batch {info['batch']}")
    reference, _ = tf("reference", feeds, 0, tag="reference")
    truth_out, info["truth"], note = reference_truth(
        tf, feeds, reference, tolerances_for("float32", spec, dict(atol or {}), dict(rtol or {})), truth, say)
    result = CompareResult(source, spec, [], info, 0.0)
    ctx = _Ctx(pool, spec, feeds, reference, truth_out, note, timeout, unsafe, say)
    from edgekit.generate import is_generative

    gen = _Generative(tf, pool, timeout, seed, say)
    for i, (path, fmt) in enumerate(zip(artifacts, formats), 1):
        prefix = f"[{i}/{len(artifacts)}] {path}"
        if fmt.name in ("tflite", "onnx") and is_generative(path):
            result.rows.append(gen.row(prefix, path, fmt, policy or "float32"))
            continue
        tols = tolerances_for(policy or fmt.policy, spec, dict(atol or {}), dict(rtol or {}))
        row, binding = _one(ctx, prefix, path, fmt, tols)
        result.rows.append(row)
        result.bindings[path] = binding
    result.elapsed_s = time.perf_counter() - t0
    return result


def _formats(artifacts: list[str], policy: str | None) -> list[FormatInfo]:
    """The format of each artifact, after checking the arguments."""
    from edgekit.validate import default_tolerance

    if not artifacts:
        raise errors.InputError("name at least one artifact to compare")
    if policy is not None:
        try:
            default_tolerance(policy)
        except ValueError as exc:
            raise errors.InputError(f"--policy: {exc}") from None
    return [artifact_format(a) for a in artifacts]


def _check_tolerance_names(spec: ModelSpec, atol: Mapping[str | None, float] | None,
                           rtol: Mapping[str | None, float] | None) -> None:
    for m in (atol or {}, rtol or {}):
        bad = [k for k in m if k is not None and k not in spec.output_names]
        if bad:
            raise errors.InputError(f"tolerance given for unknown output {bad}; the model's outputs are {spec.output_names}")


@dataclass
class _Ctx:
    pool: WorkerPool
    spec: ModelSpec
    feeds: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    truth: dict[str, np.ndarray] | None
    truth_note: str | None  # why float rows are judged by the fixed bound only
    timeout: float
    unsafe: bool
    say: Callable[[str], None]


def _one(ctx: _Ctx, prefix: str, path: str, fmt: FormatInfo, tols: dict[str, Any]) -> tuple[ArtifactResult, dict[str, Any]]:
    """One artifact: bind its names to the model's, run it, compare it."""
    runtime = fmt.runtime
    row = ArtifactResult(fmt.name, Path(path).name, runtime=runtime,
                         path=path, tolerances=tols)
    binding: dict[str, Any] = {}
    missing = unavailable_reason(runtime)
    if missing:
        row.status, row.stage, row.error = ERROR, "run", f"runtime {runtime} unavailable: {missing}"
        return row, binding
    worker = ctx.pool.tf if RUNTIMES[runtime].worker == "tf" else ctx.pool.rt
    opts = {"unsafe": True} if (ctx.unsafe and worker is ctx.pool.tf) else {}
    ctx.say(f"{prefix}: running in {runtime}")
    try:
        io = worker.call("edgekit.tasks:artifact_io", runtime, path, opts, timeout=ctx.timeout, tag=f"load:{path}")
        in_map, in_notes = match_names(io["input_names"], ctx.spec.input_names, "input")
        out_map, out_notes = match_names(io["output_names"], ctx.spec.output_names, "output")
        binding = {"inputs": in_map, "outputs": out_map}
        row.notes.extend(in_notes + out_notes)
        feeds = {a: ctx.feeds[m] for a, m in in_map.items()}
        res = worker.call("edgekit.tasks:run_artifact", runtime, path, feeds, 5, opts, timeout=ctx.timeout, tag=f"run:{path}")
    except errors.EdgekitError as exc:
        row.status, row.stage, row.error = ERROR, "run", str(exc)
        ctx.say(f"{prefix}: {row.error}")
        return row, binding
    outputs = {out_map[k]: v for k, v in res["outputs"].items()}
    row.latency = res["latency"]
    row.comparison = judge(compare_outputs(ctx.reference, outputs, tols), ctx.reference, outputs, ctx.truth)
    row.status = PASS if row.comparison else MISMATCH
    if not row.comparison:
        row.stage, row.error = "compare", "; ".join(row.comparison.failures())
    if ctx.truth_note and not any(t.quality for t in tols.values()):
        row.notes.append(ctx.truth_note)
    ctx.say(f"{prefix}: {row.status}" + (f" ({row.error})" if row.error else ""))
    return row, binding


class _Generative:
    """A generative artifact against the model: the same check as ``convert``'s
    (``edgekit.generation``), on prompts that fit both the model's and the file's cache."""

    def __init__(self, tf: Callable[..., Any], pool: WorkerPool, timeout: float, seed: int,
                 say: Callable[[str], None]) -> None:
        self.tf, self.pool, self.timeout, self.seed, self.say = tf, pool, timeout, seed, say
        self.layout: dict[str, Any] | None = None
        self.cases: dict[str, Any] = {}

    def row(self, prefix: str, path: str, fmt: FormatInfo, policy: str) -> ArtifactResult:
        from edgekit.generation import check_prompts, record

        row = ArtifactResult(fmt.name, Path(path).name, runtime=fmt.runtime, path=path, kind="generate")
        if self.layout is None:
            self.layout = self.tf("generative_layout", None, None, tag="generation:layout")
            if self.layout is None:
                raise errors.InputError(f"{path} is a generative decoder, and the model is no causal LM "
                                        f"(a keras-hub CausalLM, with call_with_cache)")
        try:
            d = self.pool.rt.call("edgekit.generate:describe", path, timeout=self.timeout, tag=f"load:{path}")
        except errors.EdgekitError as exc:
            row.status, row.stage, row.error = ERROR, "run", str(exc)
            return row
        if d["vocab"] != self.layout["vocab"]:
            row.status, row.stage = MISMATCH, "compare"
            row.error = f"the decoder's vocabulary has {d['vocab']} ids, the model's {self.layout['vocab']}"
            return row
        caches = [c for c in (d["cache_length"], self.layout["cache_length"]) if c]
        lay = {**self.layout, "cache_length": min(caches), "prefill_length": d["prefill_length"] or self.layout["prefill_length"]}
        prompts, new = check_prompts(lay, self.seed)
        key = repr((prompts, new))
        if key not in self.cases:
            self.say(f"generation: Keras greedy on {len(prompts)} prompt(s)")
            self.cases[key] = self.tf("generative_reference", None, prompts, new, tag="generation:reference")
        cases = self.cases[key]
        self.say(f"{prefix}: generating")
        try:
            runs = self.pool.rt.call("edgekit.generate:check_run", path, cases, "xnnpack", timeout=self.timeout,
                                     tag=f"run:{path}")
        except errors.EdgekitError as exc:
            row.status, row.stage, row.error = ERROR, "run", str(exc)
            return row
        record(row, cases, runs, policy)
        self.say(f"{prefix}: {row.status}" + (f" ({row.error})" if row.error else ""))
        return row


def render(result: CompareResult) -> str:
    """The matrix of a comparison: one row per artifact, then notes, inputs and the truth."""
    from edgekit.report.matrix import truth_cell, truth_lines

    head = ["artifact", "runtime", "latency", "max|d|", "max rel", "vs f64", "criterion", "result"]
    rows = []
    for r in result.rows:
        c = r.comparison
        tol = next(iter(r.tolerances.values()), None)
        rows.append([r.path or r.filename, r.runtime, "-" if not r.latency else f"{r.latency['median_ms']:.2f} ms",
                     "-" if c is None or c.max_abs is None else f"{c.max_abs:.2g}",
                     "-" if c is None or c.max_rel is None else f"{c.max_rel:.2g}", truth_cell(c),
                     "-" if tol is None else tol.short(), {PASS: "PASS", MISMATCH: "FAIL", ERROR: "ERROR"}[r.status]])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    notes = [f"  {r.path}: {m}" for r in result.rows for m in ([r.error] if r.error else []) + r.notes]
    if notes:
        lines += [""] + notes
    lines += ["", f"inputs: {result.feeds_info['source']} (batch {result.feeds_info['batch']}); "
                  f"model: {result.source.display}", *truth_lines(result.feeds_info.get("truth"))]
    return "\n".join(lines)
