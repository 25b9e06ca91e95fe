"""Attack 4: files that declare far more memory than they occupy. Each run is under an
address-space limit (RLIMIT_AS), so a bomb that got through would fail in its own process
instead of taking the machine down; edgekit must refuse before allocating, with both numbers."""
from __future__ import annotations

import re

import numpy as np
import pytest

from edgekit import memguard
from tests.security.conftest import (GiB, edgekit, keras_declaring_weights, keras_with_zero_member, npy_header_only,
                                     npz_declaring, one_line_error)

LIMIT = 2 * GiB  # the parent never imports TensorFlow: 2 GiB is ample for everything it does


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"([0-9.]+) GiB", line)]


def test_keras_whose_weights_declare_1_gib(small_keras, tmp_path):
    bomb = keras_declaring_weights(small_keras, tmp_path / "bomb.keras", 1 * GiB)
    assert bomb.stat().st_size < 100_000
    assert memguard.declared_model_bytes("keras", str(bomb)) == 1 * GiB
    line = one_line_error(edgekit(["convert", str(bomb), "--out", str(tmp_path / "o"), "-q"], limit_as=LIMIT), 2)
    declared, need, avail = _numbers(line)
    assert declared == 1.0 and need == 6.0 and avail < 2.0, line
    assert not (tmp_path / "o").exists()


def test_keras_with_a_highly_compressed_gib(small_keras, tmp_path):
    bomb = keras_with_zero_member(small_keras, tmp_path / "zeros.keras", 1 * GiB)
    assert bomb.stat().st_size < 5_000_000
    line = one_line_error(edgekit(["convert", str(bomb), "--out", str(tmp_path / "o"), "-q"], limit_as=LIMIT), 2)
    assert "declares 1.0 GiB" in line and "available" in line


def test_h5_declaring_datasets_without_data(tmp_path):
    import h5py

    p = tmp_path / "big.h5"
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = '{"class_name": "Sequential", "config": {"layers": []}}'
        f.create_dataset("model_weights/w", shape=(2 * GiB // 4,), dtype="f4", chunks=(1 << 20,))
    assert p.stat().st_size < 100_000
    line = one_line_error(edgekit(["convert", str(p), "--out", str(tmp_path / "o"), "-q"], limit_as=LIMIT), 2)
    assert "declares 2.0 GiB" in line


def test_npz_declaring_2_gib(tmp_path):
    bomb = npz_declaring(tmp_path / "x.npz", "pixels", (2, GiB // 4))
    assert bomb.stat().st_size < 5_000_000
    line = one_line_error(edgekit(["convert", "builtin:mlp", "--inputs", str(bomb), "--to", "onnx",
                                   "--out", str(tmp_path / "o"), "-q"], limit_as=LIMIT), 2)
    assert "declares 2.0 GiB" in line and "8.0 GiB" in line


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_array_declaring_100000_squared(tmp_path, suffix):
    if suffix == ".npy":
        p = npy_header_only(tmp_path / "x.npy", (100000, 100000))
    else:
        import zipfile

        npy_header_only(tmp_path / "m.npy", (100000, 100000))
        p = tmp_path / "x.npz"
        with zipfile.ZipFile(p, "w") as z:
            z.write(tmp_path / "m.npy", "pixels.npy")
    line = one_line_error(edgekit(["convert", "builtin:mlp", "--inputs", str(p), "--to", "onnx",
                                   "--out", str(tmp_path / "o"), "-q"], limit_as=LIMIT), 2)
    assert "declares 37.3 GiB" in line


def test_huge_shape_times_batch(tmp_path):
    # refused after the model is loaded (its input spec is needed), before any input is drawn;
    # the TensorFlow worker needs more address space than the parent
    (tmp_path / "m.py").write_text("import keras\ndef build():\n    x = keras.Input((None, 4), name='x')\n"
                                   "    return keras.Model(x, keras.layers.Dense(2)(x))\n")
    proc = edgekit(["convert", f"{tmp_path / 'm.py'}:build", "--shape", "x=100000000,4", "--batch-size", "64",
                    "--to", "onnx", "--out", str(tmp_path / "o"), "-q"], limit_as=24 * GiB)
    line = one_line_error(proc, 2)
    assert "random inputs of batch 64" in line and "declares 95.4 GiB" in line
    assert not (tmp_path / "o").exists()


def test_negative_shape_is_a_usage_error():
    from edgekit.errors import InputError
    from edgekit.specs import TensorSpec

    with pytest.raises(InputError, match="at least 1"):
        memguard.check_feeds((TensorSpec("x", (None, None), "float32"),), 2, {"x": (-5,)})


def test_declared_bytes_from_headers_only(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 5), np.float64))
    assert memguard.declared_array_bytes(tmp_path / "a.npy") == 3 * 5 * 8
    np.savez(tmp_path / "b.npz", a=np.zeros(7, np.int16), b=np.zeros((2, 2), np.float32))
    assert memguard.declared_array_bytes(tmp_path / "b.npz") == 7 * 2 + 4 * 4
