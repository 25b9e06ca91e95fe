"""Functions the pipeline calls inside worker processes (by ``"edgekit.tasks:NAME"``).

The TensorFlow worker keeps the loaded model between calls; every call names the model
source again so that a worker restarted after a crash reloads it transparently.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

_STATE: dict[str, Any] = {}


def _host_cpu() -> Any:
    """The host column is the CPU: where a GPU build of TensorFlow is installed, the reference
    and the TensorFlow-side checks are pinned to the CPU (the ``cuda`` device runs its own)."""
    import contextlib
    import sys

    tf = sys.modules.get("tensorflow")
    if tf is None:
        return contextlib.nullcontext()
    return tf.device("/CPU:0")


def _context(source: Mapping[str, Any]) -> Any:
    from edgekit.converters.base import ExportContext
    from edgekit.models import keras_io

    key = repr(sorted(source.items()))
    if _STATE.get("key") != key:
        _STATE.clear()
        import dataclasses

        model = keras_io.load(source)
        model, note = keras_io.functional_view(model, source.get("shapes"))
        if source.get("weights"):
            model.load_weights(source["weights"])  # saved from the very model in use here
        _STATE["string_model"] = model
        model, preps, string_note = keras_io.split_string_preprocessing(model)
        spec = keras_io.model_spec(model, source["kind"])
        notes = tuple(n for n in (note, string_note) if n)
        spec = dataclasses.replace(spec, notes=(*spec.notes, *notes), preprocessing=tuple(preps))
        _STATE["key"] = key
        _STATE["ctx"] = ExportContext(model, spec)
    return _STATE["ctx"]


def inspect_model(source: Mapping[str, Any]) -> dict[str, Any]:
    """Load the model; return its ModelSpec as JSON."""
    return _context(source).spec.to_json()


def snapshot_weights(source: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Save the weights of a model built by code (random initial weights) so that a worker
    restarted after a crash rebuilds exactly the same model; returns the new source."""
    ctx = _context(source)
    _STATE.get("string_model", ctx.model).save_weights(path)  # the model as loaded, before any split
    new = {**source, "weights": path}
    _STATE["key"] = repr(sorted(new.items()))
    return new


def reference(source: Mapping[str, Any], feeds: Mapping[str, np.ndarray], repeats: int = 5) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The model's own ``model(x, training=False)`` outputs by name, with its latency."""
    from edgekit.models.keras_io import call
    from edgekit.runtimes.base import time_calls

    ctx = _context(source)
    with _host_cpu():
        return time_calls(lambda: call(ctx.model, feeds, ctx.spec.input_names, ctx.spec.output_names), repeats)


def string_reference(source: Mapping[str, Any], texts: Mapping[str, list[str]],
                     others: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The full model, string layers included, on sample texts; and the layers' token ids."""
    from edgekit.models.keras_io import string_reference as run

    _context(source)
    with _host_cpu():
        return run(_STATE["string_model"], texts, others)


def export(source: Mapping[str, Any], fmt: str, path: str, offered: Mapping[str, Any], workdir: str) -> dict[str, Any]:
    """Export to ``path``; intermediate files go to ``workdir``, which the caller removes.
    ``offered``: what the run can give any exporter (check sizes, earlier artifacts, the
    recipe...); each format's exporter takes the options it declares."""
    from edgekit.converters import get_exporter

    ctx = _context(source)
    if ctx.cache.get("workdir") != workdir:
        ctx.cache.clear()  # intermediates of an earlier run are gone with its workdir
        ctx.cache["workdir"] = workdir
    exporter = get_exporter(fmt)
    return exporter.export(ctx, path, {k: v for k, v in offered.items() if k in exporter.allowed_options})


def run_artifact(runtime: str, path: str, feeds: Mapping[str, np.ndarray], repeats: int = 5, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Load an artifact in its runtime, run it on ``feeds`` (by name), time it."""
    from edgekit.runtimes import runner_class

    with _host_cpu(), runner_class(runtime)(path, **dict(options or {})) as r:
        outputs, stats = r.timed(feeds, repeats)
        return {"outputs": outputs, "latency": stats, "input_names": r.input_names(), "output_names": r.output_names(),
                "notes": list(getattr(r, "notes", []))}


def truth(source: Mapping[str, Any], feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The float64 twin's outputs on ``feeds`` (the ground truth), or why there are none.

    The twin is built once per loaded model and kept with it; ``seconds`` counts the build
    (when it happened in this call) and the run."""
    import time

    from edgekit.models.twin import TwinUnavailable, build_twin, twin_outputs

    ctx = _context(source)
    t0 = time.perf_counter()
    try:
        with _host_cpu():
            if "twin" not in _STATE:
                try:
                    _STATE["twin"] = build_twin(ctx.model)
                except TwinUnavailable as exc:
                    _STATE["twin"] = exc
            twin = _STATE["twin"]
            if isinstance(twin, TwinUnavailable):
                raise twin
            out = twin_outputs(twin, feeds, ctx.spec.input_names, ctx.spec.output_names)
    except TwinUnavailable as exc:
        return {"outputs": None, "reason": f"no float64 twin: {exc}", "seconds": time.perf_counter() - t0}
    return {"outputs": out, "reason": None, "seconds": time.perf_counter() - t0}


def artifact_io(runtime: str, path: str, options: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """An artifact's input and output names, as its runtime sees them (loads it, runs nothing)."""
    from edgekit.runtimes import runner_class

    with _host_cpu(), runner_class(runtime)(path, **dict(options or {})) as r:
        return {"input_names": r.input_names(), "output_names": r.output_names()}


def _causal_lm(source: Mapping[str, Any], task: str | None) -> Any:
    from edgekit.converters.generative import as_causal_lm

    ctx = _context(source)
    key = ("lm", task)
    if _STATE.get("lm_key") != key:
        _STATE["lm"] = as_causal_lm(_STATE.get("string_model", ctx.model), task)
        _STATE["lm_key"] = key
    return _STATE["lm"]


def generative_layout(source: Mapping[str, Any], task: str | None, max_cache_length: int | None) -> dict[str, Any] | None:
    """The decoder's cache layout (``edgekit.converters.generative.layout``), or None when
    the model is no causal LM; an unknown layout is an InputError."""
    from edgekit.converters.generative import layout

    lm = _causal_lm(source, task)
    if lm is None:
        return None
    with _host_cpu():
        return layout(lm, max_cache_length)


def export_generative(source: Mapping[str, Any], fmt: str, dest: str, lay: dict[str, Any],
                      opset: int, task: str | None) -> dict[str, Any]:
    """Write the generative artifact of ``fmt`` (``tflite`` or ``onnx``) to ``dest``."""
    import time

    from edgekit.converters import generative

    lm = _causal_lm(source, task)
    t0 = time.perf_counter()
    with _host_cpu():
        meta = (generative.export_tflite(lm, dest, lay) if fmt == "tflite"
                else generative.export_onnx(lm, dest, lay, opset))
    meta["convert_s"] = time.perf_counter() - t0
    return meta


def generative_reference(source: Mapping[str, Any], task: str | None, prompts: list[list[int]],
                         max_new_tokens: int) -> list[dict[str, Any]]:
    """Keras' own greedy generation for each prompt and its single-pass logits."""
    from edgekit.converters.generative import keras_reference

    with _host_cpu():
        return keras_reference(_causal_lm(source, task), prompts, max_new_tokens)
