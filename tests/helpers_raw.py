"""Artifacts written by the raw tools, not by edgekit (run inside the TensorFlow worker):
``model.export`` + ``TFLiteConverter``, ``tf2onnx.convert.from_function``, ``model.save``.
They name inputs and outputs their own way, which is what ``edgekit compare`` must bind."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any


def raw_tflite(model: Any, path: str) -> str:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):
        model.export(os.path.join(d, "sm"))
        data = tf.lite.TFLiteConverter.from_saved_model(os.path.join(d, "sm")).convert()
    Path(path).write_bytes(data)
    return path


def raw_onnx(model: Any, path: str, opset: int = 17) -> str:
    """tf2onnx on a tf.function around ``model(x, training=False)`` (from_keras fails on
    Sequential models; see FIELD-NOTES)."""
    import tensorflow as tf
    import tf2onnx

    specs = [tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=t.name.split(":")[0].replace("/", "_"))
             for t in model.inputs]
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False), input_signature=specs)
    with contextlib.redirect_stdout(io.StringIO()):
        tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset, output_path=path)
    return path


def raw_saved_model(model: Any, path: str) -> str:
    with contextlib.redirect_stdout(io.StringIO()):
        model.export(path)
    return path


WRITERS = {"tflite": (raw_tflite, "raw.tflite"), "onnx": (raw_onnx, "raw.onnx"),
           "saved_model": (raw_saved_model, "raw_saved_model"), "keras": (lambda m, p: m.save(p) or p, "raw.keras")}


def export_raw(module_path: str, function: str, out_dir: str, formats: list[str]) -> dict[str, str]:
    """Build ``module_path:function`` and write it with the raw tools; paths by format."""
    from edgekit.models.keras_io import BUILD_SEED, _load_builder
    import keras

    keras.utils.set_random_seed(BUILD_SEED)
    model = _load_builder(module_path, function)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {f: WRITERS[f][0](model, str(out / WRITERS[f][1])) for f in formats}
