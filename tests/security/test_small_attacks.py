"""Attack 7: bad timeouts, FIFOs as inputs, float64 overflowing float32, inspect on a file it
cannot load, and Keras' real refusal reason."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from tests.security.conftest import edgekit, keras_members, one_line_error, write_zip


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_bad_timeout_is_a_usage_error(tmp_path, value):
    line = one_line_error(edgekit(["convert", "builtin:mlp", "--timeout", value, "--out", str(tmp_path / "o"), "-q"]), 2)
    assert "--timeout" in line
    assert not (tmp_path / "o").exists()


def test_nan_timeout_in_config_refused(tmp_path):
    (tmp_path / "edgekit.toml").write_text('[models.m]\nmodel = "builtin:mlp"\ntimeout = nan\n')
    line = one_line_error(edgekit(["check", "-q"], cwd=tmp_path), 2)
    assert "edgekit.toml:3: models.m.timeout: expected a finite number" in line


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_fifo_or_device_as_inputs_refused(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "x.npy"
        os.mkfifo(path)
    else:
        path = "/dev/zero"
    line = one_line_error(edgekit(["convert", "builtin:mlp", "--inputs", str(path), "--to", "onnx",
                                   "--out", str(tmp_path / "o"), "-q"], timeout=60), 2)
    assert ("a FIFO" if kind == "fifo" else "a device") in line


def test_float64_overflowing_float32_refused_with_count(tmp_path):
    x = np.zeros((2, 784))
    x[0, :5] = 1e39
    x[1, 0] = -1e300
    np.savez(tmp_path / "x.npz", pixels=x)
    line = one_line_error(edgekit(["convert", "builtin:mlp", "--inputs", str(tmp_path / "x.npz"), "--to", "onnx",
                                   "--out", str(tmp_path / "o"), "-q"]), 2)
    assert "6 value(s) beyond the float32 range" in line


def test_inspect_exits_nonzero_on_unloadable_file(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    proc = edgekit(["inspect", str(bad)])
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr


def test_keras_refusal_reason_reaches_the_user(small_keras, tmp_path):
    m = keras_members(small_keras)
    cfg = json.loads(m["config.json"])
    for layer in cfg["config"]["layers"]:
        if layer["class_name"] == "Dense":
            layer["config"]["activation"] = {"module": "keras.utils", "class_name": "function",
                                             "config": "get_file", "registered_name": "get_file"}
    p = write_zip(tmp_path / "getfile.keras", {**m, "config.json": json.dumps(cfg).encode()})
    line = one_line_error(edgekit(["convert", str(p), "--to", "onnx", "--out", str(tmp_path / "o"), "-q"]), 2)
    assert "keras.utils.get_file" in line and "disallowed" in line, line
    assert zipfile.is_zipfile(p)
