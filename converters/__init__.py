"""Exporters, one module per format, registered in ``FORMATS`` (importable without TensorFlow).

Each entry names its exporter class lazily (``module:Class``), the file or directory it
writes, the runtime that checks it and the tolerance policy it is checked under.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FormatInfo:
    name: str
    filename: str
    exporter: str
    runtime: str
    policy: str
    description: str
    needs_keras_architecture: bool = False
    extra_files: tuple[str, ...] = ()
    # Export paths tried in order until one yields an artifact that passes its check.
    paths: tuple[str, ...] = ("",)


FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in [
        FormatInfo("saved_model", "saved_model", "edgekit.converters.saved_model:SavedModelExporter",
                   "tf-savedmodel", "exact", "SavedModel for TF Serving (serving_default, Keras names)"),
        FormatInfo("keras", "model.keras", "edgekit.converters.keras_v3:KerasV3Exporter",
                   "keras", "exact", "Keras v3 archive", needs_keras_architecture=True),
        FormatInfo("h5", "model.h5", "edgekit.converters.h5:H5Exporter",
                   "keras", "exact", "legacy HDF5 model", needs_keras_architecture=True),
        FormatInfo("weights", "model.weights.h5", "edgekit.converters.weights:WeightsExporter",
                   "keras-weights", "exact", "weights only + architecture JSON",
                   needs_keras_architecture=True, extra_files=("model.json",)),
        FormatInfo("tflite", "model.tflite", "edgekit.converters.tflite:TFLiteExporter",
                   "litert", "float32", "TFLite float32, builtin ops only"),
        FormatInfo("onnx", "model.onnx", "edgekit.converters.onnx:OnnxExporter",
                   "onnxruntime", "float32", "ONNX, dynamic batch named 'batch'",
                   paths=("tf2onnx", "tf2onnx-from-tflite", "keras-export", "tf2onnx-fixed-batch")),
    ]
}

DEFAULT_OPSET = 17


def get_exporter(name: str) -> Any:
    """Instantiate the exporter registered for ``name`` (imports its module)."""
    module, _, cls = FORMATS[name].exporter.partition(":")
    return getattr(importlib.import_module(module), cls)()


def parse_formats(text: str | None) -> list[str]:
    """``"tflite,onnx"`` -> ``["tflite", "onnx"]`` in registry order; ``None`` -> all."""
    from edgekit.errors import InputError

    if text is None or text.strip() in ("", "all"):
        return list(FORMATS)
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in FORMATS]
    if unknown:
        raise InputError(f"unknown format {', '.join(map(repr, unknown))} in --to; choose from: {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in wanted]
