"""Attack 5: inputs that used to end in a traceback (exit 1) where a one-line error (exit 2)
is promised: deep TOML and JSON, image bombs, manifests and reports of the wrong shape."""
from __future__ import annotations

import zipfile

import pytest

from tests.security.conftest import (deep_json, deep_toml, edgekit, keras_members, one_line_error, png_declaring,
                                     write_json, write_zip)


@pytest.fixture(scope="module")
def cnn_tflite(pool, tmp_path_factory):
    from edgekit.pipeline import convert

    d = tmp_path_factory.mktemp("cnn")
    convert("builtin:cnn", d / "out", formats="tflite", pool=pool)
    return d / "out" / "model.tflite"


@pytest.mark.parametrize("depth", [500, 5000])
def test_deep_toml_everywhere(tmp_path, depth):
    (tmp_path / "edgekit.toml").write_text(deep_toml(depth))
    line = one_line_error(edgekit(["check", str(tmp_path / "edgekit.toml"), "-q"]), 2)
    assert "nested more than 200 levels" in line
    (tmp_path / "recipe.toml").write_text(deep_toml(depth))
    line = one_line_error(edgekit(["train", "--recipe", str(tmp_path / "recipe.toml"), "--out", str(tmp_path / "t")]), 2)
    assert "recipe" in line and "nested" in line
    prof = tmp_path / "profiles"
    prof.mkdir(exist_ok=True)
    (prof / "deep.toml").write_text(deep_toml(depth))
    line = one_line_error(edgekit(["devices"], env={"EDGEKIT_DEVICE_PROFILES": str(prof)}), 2)
    assert "device profile" in line and "nested" in line


def test_keras_config_nested_thousands_deep(small_keras, tmp_path):
    m = keras_members(small_keras)
    for depth, name in ((5000, "a.keras"), (600, "b.keras")):  # past json's own limit, and past edgekit's
        p = write_zip(tmp_path / name, {**m, "config.json": deep_json(depth).encode()})
        line = one_line_error(edgekit(["convert", str(p), "--out", str(tmp_path / "o"), "-q"]), 2)
        assert "config.json is nested more than 200 levels deep" in line


@pytest.mark.parametrize("side, says", [(40000, "1600000000 pixels"), (9000, "9000x9000 pixels (81 MP)")])
def test_png_bomb_for_run(cnn_tflite, tmp_path, side, says):
    # 40000^2 is past PIL's own bomb limit; 9000^2 is below it (PIL would only warn) but past edgekit's
    png = png_declaring(tmp_path / "huge.png", side, side)
    line = one_line_error(edgekit(["run", str(cnn_tflite), "--input", str(png)]), 2)
    assert says in line, line


def test_png_declaring_40000_squared_in_calibration_folder(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    png_declaring(folder / "huge.png", 40000, 40000)
    line = one_line_error(edgekit(["convert", "builtin:cnn", "--to", "tflite", "--quantize", "int8",
                                   "--calibration", str(folder), "--out", str(tmp_path / "o"), "-q"]), 2)
    assert "1600000000 pixels" in line and "huge.png" in line


@pytest.mark.parametrize("manifest", [
    [1, 2], {"manifest_version": 1, "artifacts": "model.tflite"}, {"manifest_version": 1, "artifacts": [3]},
    {"manifest_version": 1, "artifacts": [{"path": 7, "sha256": None}]},
    {"manifest_version": 1, "artifacts": [{"path": "a", "meta": {"extra_files": ["x"]}}]},
    {"manifest_version": 1, "artifacts": [{"path": "a", "meta": "m"}]},
])
def test_verify_manifest_of_wrong_types(tmp_path, manifest):
    (tmp_path / "a").write_text("a")
    write_json(tmp_path / "manifest.json", manifest)
    proc = edgekit(["verify", str(tmp_path)])
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (1, 2), proc.stderr  # a usage error, or a listed problem
    if proc.returncode == 2:
        one_line_error(proc, 2)


def test_verify_deep_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(deep_json(5000))
    assert "nested" in one_line_error(edgekit(["verify", str(tmp_path)]), 2)


@pytest.mark.parametrize("report", [[1, 2, 3], "text", {"report_version": 1, "models": "m"},
                                    {"report_version": 1, "config_fingerprint": "f", "all_models": ["m"],
                                     "models": [{"name": "m"}], "cases": [{"status": "pass"}]}])
def test_report_merge_on_wrong_json(tmp_path, report):
    p = write_json(tmp_path / "r.json", report)
    line = one_line_error(edgekit(["report", "merge", str(p), "--out", str(tmp_path / "m")]), 2)
    assert "not an edgekit check report.json" in line


def test_zip_npz_with_deep_garbage_still_one_line(tmp_path):
    p = tmp_path / "x.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("pixels.npy", b"\x93NUMPY\x01\x00" + b"\x10\x00" + b"{'descr': [[[[[[" + b" " * 2)
    one_line_error(edgekit(["convert", "builtin:mlp", "--inputs", str(p), "--to", "onnx", "--out", str(tmp_path / "o"),
                            "-q"]), 2)
