"""Attack 1: a SavedModel whose graph reads or writes files runs when edgekit computes the
reference. The graph is scanned from saved_model.pb before anything of it is loaded."""
from __future__ import annotations

import json

import pytest

from tests.security.conftest import edgekit, one_line_error


@pytest.fixture(scope="module")
def hostile(pool, tmp_path_factory):
    d = tmp_path_factory.mktemp("sm")
    target = d / "written.txt"
    return pool.tf.call("tests.security.hostile_tf:saved_models_touching_files", str(d), str(target),
                        timeout=300), target


@pytest.mark.parametrize("name, op", [("write", "WriteFile"), ("read", "ReadFile"), ("print", "PrintV2"),
                                      ("glob", "MatchingFiles")])
def test_scan_names_the_op(pool, hostile, name, op):
    paths, _ = hostile
    found = pool.tf.call("tests.security.hostile_tf:scan", paths[name], timeout=120)
    assert [f.split()[0] for f in found] == [op], found


def test_clean_keras_export_and_its_saver_pass(pool, hostile, keras_files):
    # Keras exports carry SaveV2/RestoreV2 in the saver's functions: allowed there only
    paths, _ = hostile
    assert pool.tf.call("tests.security.hostile_tf:scan", paths["clean"], timeout=120) == []
    assert pool.tf.call("tests.security.hostile_tf:scan", keras_files["cnn_saved_model"], timeout=120) == []


def test_default_convert_refuses_and_writes_nothing(hostile, tmp_path):
    paths, target = hostile
    for name in ("write", "print"):
        proc = edgekit(["convert", paths[name], "--to", "saved_model", "--out", str(tmp_path / name), "-q"])
        line = one_line_error(proc, 2)
        assert "WriteFile" in line or "PrintV2" in line, line
        assert "--unsafe" in line
        assert not target.exists() and not target.with_name(target.name + ".printed").exists()
        assert not (tmp_path / name / "manifest.json").exists()


def test_unsafe_runs_it(hostile, tmp_path):
    """--unsafe is the user's explicit trust: the graph then runs (and the file is written),
    which shows that the scan, not an accident, is what stopped it above."""
    paths, target = hostile
    proc = edgekit(["convert", paths["write"], "--unsafe", "--to", "saved_model", "--out", str(tmp_path / "u"), "-q"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert target.read_text() == "written by the model"
    m = json.loads((tmp_path / "u" / "manifest.json").read_text())
    assert [a["status"] for a in m["artifacts"]] == ["pass"]
    target.unlink()


def test_const_declaring_gib_refused_before_load(pool, tmp_path):
    """One float with a 64 GiB shape: refused from the protobuf, --unsafe or not."""
    sm = pool.tf.call("tests.security.hostile_tf:saved_model_with_broadcast_const", str(tmp_path / "c_sm"), 64,
                      timeout=120)
    for extra in ([], ["--unsafe"]):
        line = one_line_error(edgekit(["convert", sm, "--to", "onnx", "--out", str(tmp_path / "o"), "-q", *extra]), 2)
        assert "constants declares 64.0 GiB" in line
