"""What a format is, decided once: ``format_of`` on real small files of every format, and
on files whose name and content disagree (content first)."""
from __future__ import annotations

import shutil

from edgekit.converters import FORMATS, format_of
from edgekit.devices.selftest import HERE as SELFTEST


def test_each_format_from_a_real_file(keras_files):
    assert format_of(keras_files["cnn.keras"]).name == "keras"
    assert format_of(keras_files["cnn.h5"]).name == "h5"
    assert format_of(keras_files["cnn.weights.h5"]).name == "weights"  # before .h5: both end in it
    assert format_of(keras_files["cnn_saved_model"]).name == "saved_model"
    assert format_of(SELFTEST / "float.tflite").name == "tflite"
    assert format_of(SELFTEST / "int8.onnx").name == "onnx"
    assert {format_of(keras_files[k]).runtime for k in ("cnn.keras", "cnn.h5")} == {"keras"}
    assert format_of(keras_files["cnn.weights.h5"]).runtime == "keras-weights"
    assert format_of(keras_files["cnn_saved_model"]).runtime == "tf-savedmodel"


def test_content_decides_over_the_name(tmp_path):
    shutil.copy(SELFTEST / "float.tflite", tmp_path / "model.onnx")
    shutil.copy(SELFTEST / "float.onnx", tmp_path / "model.bin")
    assert format_of(tmp_path / "model.onnx").name == "tflite"
    assert format_of(tmp_path / "model.bin").name == "onnx"


def test_what_is_no_format(tmp_path):
    (tmp_path / "damaged.tflite").write_bytes(b"\x00" * 64)  # no TFL3 identifier
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty_dir").mkdir()
    assert format_of(tmp_path / "damaged.tflite") is None
    assert format_of(tmp_path / "damaged.tflite", trust_name=True) is FORMATS["tflite"]  # its runtime says why
    assert format_of(tmp_path / "notes.txt") is None and format_of(tmp_path / "notes.txt", trust_name=True) is None
    assert format_of(tmp_path / "empty_dir") is None
    assert format_of(tmp_path / "missing.onnx") is None and format_of(tmp_path / "missing.onnx", trust_name=True) is None
