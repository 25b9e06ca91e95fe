"""Attacks that were already handled, kept as regression tests: code in .keras and legacy
.h5 (marshal'd bytecode in a Lambda), pickled arrays, unsafe and symlinked zip members."""
from __future__ import annotations

import json
import stat
import zipfile

import numpy as np
import pytest

from tests.security.conftest import edgekit, keras_members, one_line_error, write_zip


def test_lambda_in_keras_refused(keras_files, tmp_path):
    line = one_line_error(edgekit(["convert", keras_files["lambda.keras"], "--out", str(tmp_path / "o"), "-q"]), 2)
    assert "Lambda layer 'doubler'" in line and "--unsafe" in line


def test_marshalled_lambda_in_legacy_h5_refused(pool, tmp_path):
    p = pool.tf.call("tests.security.hostile_tf:legacy_h5_lambda", str(tmp_path / "lambda.h5"), timeout=120)
    import h5py

    with h5py.File(p) as f:  # the stored function is Python bytecode
        assert "Lambda" in f.attrs["model_config"]
    line = one_line_error(edgekit(["convert", p, "--out", str(tmp_path / "o"), "-q"]), 2)
    assert "Lambda layer 'doubler'" in line


def test_pickled_npz_refused(tmp_path):
    np.savez(tmp_path / "x.npz", pixels=np.array([{"a": 1}], dtype=object))
    line = one_line_error(edgekit(["convert", "builtin:mlp", "--inputs", str(tmp_path / "x.npz"), "--to", "onnx",
                                   "--out", str(tmp_path / "o"), "-q"]), 2)
    assert "pickled" in line


@pytest.mark.parametrize("member", ["../../evil.txt", "/etc/evil.txt"])
def test_zip_traversal_refused(small_keras, tmp_path, member):
    p = write_zip(tmp_path / "t.keras", {**keras_members(small_keras), member: b"x"})
    assert "unsafe path" in one_line_error(edgekit(["convert", str(p), "--out", str(tmp_path / "o"), "-q"]), 2)


def test_symlink_member_refused(small_keras, tmp_path):
    p = tmp_path / "s.keras"
    write_zip(p, keras_members(small_keras))
    with zipfile.ZipFile(p, "a") as z:
        info = zipfile.ZipInfo("assets/passwd")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    assert "symbolic link" in one_line_error(edgekit(["convert", str(p), "--out", str(tmp_path / "o"), "-q"]), 2)


def test_lambda_hidden_in_a_nested_model_refused(small_keras, tmp_path):
    m = keras_members(small_keras)
    cfg = json.loads(m["config.json"])
    cfg["config"]["layers"].append({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"name": "hidden", "function": {"class_name": "__lambda__"}}}]}})
    p = write_zip(tmp_path / "n.keras", {**m, "config.json": json.dumps(cfg).encode()})
    assert "Lambda layer 'hidden'" in one_line_error(edgekit(["convert", str(p), "--out", str(tmp_path / "o"), "-q"]), 2)
