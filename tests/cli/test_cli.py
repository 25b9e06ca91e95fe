"""The real ``edgekit`` entry point in fresh processes: exit codes, one-line errors,
nothing half-written."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

BUILDERS_PY = Path(__file__).resolve().parent.parent / "fixtures" / "builders.py"


def assert_one_line_error(proc, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip().splitlines()
    errors = [ln for ln in err if ln.startswith("edgekit: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for f in fragments:
        assert f in errors[0], (f, errors[0])


def test_help_explains_every_option():
    top = run_cli(["--help"])
    assert top.returncode == 0 and "convert" in top.stdout and "Exit codes" in top.stdout
    conv = run_cli(["convert", "--help"])
    assert conv.returncode == 0
    for opt in ("--out", "--to", "--opset", "--inputs", "--batch-size", "--seed", "--shape", "--atol", "--rtol",
                "--unsafe", "--timeout", "--quiet"):
        assert opt in conv.stdout, opt


@pytest.fixture()
def small_npz(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, pixels=np.zeros((2, 784), np.float32))
    return p


def _bad_cases(tmp_path: Path, keras_files: dict[str, str]) -> dict[str, tuple[list[str], list[str]]]:
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "afile").write_text("x")
    cut = tmp_path / "cut.keras"
    data = open(keras_files["cnn.keras"], "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    return {
        "missing file": (["convert", str(tmp_path / "nope.keras")], ["does not exist"]),
        "directory": (["convert", str(tmp_path)], ["directory but not a SavedModel"]),
        "truncated": (["convert", str(cut)], ["truncated or corrupted"]),
        "non-model": (["convert", str(tmp_path / "notes.txt")], ["not a Keras model"]),
        "unknown format": (["convert", "builtin:mlp", "--to", "tflite,coreml"], ["unknown format 'coreml'"]),
        "out is a file": (["convert", "builtin:mlp", "--out", str(tmp_path / "afile")], ["is a file"]),
        "out not writable": (["convert", "builtin:mlp", "--out", "/proc/edgekit-out"], ["output directory"]),
        "bad option value": (["convert", "builtin:mlp", "--opset", "seventeen"], ["seventeen"]),
        "lambda": (["convert", keras_files["lambda.keras"]], ["Lambda layer 'doubler'", "--unsafe"]),
    }


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, keras_files):
    out = tmp_path / "out"
    for name, (args, fragments) in _bad_cases(tmp_path, keras_files).items():
        if "--out" not in args:
            args = [*args, "--out", str(out)]
        proc = run_cli(args)
        assert_one_line_error(proc, 2, *fragments)
        assert not out.exists(), name


def test_inputs_problems_found_after_loading_still_write_nothing(tmp_path):
    out = tmp_path / "out"
    cases = {
        "wrong name": ({"pixel": np.zeros((2, 784), np.float32)}, "no input named 'pixel'"),
        "wrong shape": ({"pixels": np.zeros((2, 28, 28), np.float32)}, "expects (batch, 784)"),
        "wrong dtype": ({"pixels": np.array([["a"] * 784])}, "expected numbers"),
    }
    for name, (arrays, fragment) in cases.items():
        npz = tmp_path / f"{name.replace(' ', '_')}.npz"
        np.savez(npz, **arrays)
        proc = run_cli(["convert", "builtin:mlp", "--inputs", str(npz), "--out", str(out)])
        assert_one_line_error(proc, 2, fragment)
        assert not out.exists(), name


def test_crashing_converter_becomes_a_failed_row(tmp_path):
    out = tmp_path / "out"
    proc = run_cli(["convert", "builtin:mlp", "--to", "tflite,onnx", "--out", str(out), "-q"],
                   env={"EDGEKIT_INJECT_CRASH": "export:tflite"})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "SIGSEGV" in proc.stdout
    m = json.loads((out / "manifest.json").read_text())
    rows = {a["format"]: a for a in m["artifacts"]}
    assert rows["tflite"]["status"] == "error" and rows["tflite"]["stage"] == "convert"
    assert "SIGSEGV" in rows["tflite"]["error"]
    assert rows["onnx"]["status"] == "pass"  # the run went on after the crash
    assert not (out / "model.tflite").exists()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]  # no lock file left


def test_lambda_converts_with_unsafe(tmp_path, keras_files):
    proc = run_cli(["convert", keras_files["lambda.keras"], "--unsafe", "--to", "keras,tflite,onnx",
                    "--out", str(tmp_path), "-q"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASS") == 3


def test_tolerance_breach_exits_3(tmp_path):
    proc = run_cli(["convert", f"{BUILDERS_PY}:multi_output", "--to", "tflite", "--batch-size", "8",
                    "--atol", "big=1e-4", "--rtol", "big=0", "--out", str(tmp_path), "-q"])
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "big: max|d|=" in proc.stdout


def test_demo_trains_converts_and_passes(tmp_path):
    proc = run_cli(["demo", "--epochs", "2", "--out", str(tmp_path / "demo")], timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "epoch 2/2" in proc.stderr
    assert proc.stdout.count("PASS") == 6
    acc = proc.stdout.rsplit("test accuracy: ", 1)[1].split(";")[0]
    assert acc.endswith("%") and float(acc[:-1]) > 80  # accuracy is a percentage everywhere
    m = json.loads((tmp_path / "demo" / "artifacts" / "manifest.json").read_text())
    assert m["feeds"]["batch"] == 64 and m["exit_code"] == 0
    for a in m["artifacts"]:
        top1 = a["comparison"]["outputs"][0]["top1_agreement"]
        assert top1 == 1.0, a["format"]
    assert (tmp_path / "demo" / "trained_mlp.keras").is_file()


def test_models_list_and_show():
    lst = run_cli(["models"])
    assert lst.returncode == 0
    names = [ln.split()[0] for ln in lst.stdout.splitlines()]
    assert names == ["mlp", "two_input", "cnn", "conv1d", "lstm", "gru", "embedding"]
    show = run_cli(["models", "show", "mlp"])
    assert show.returncode == 0, show.stderr
    assert "mlp: 235,146 parameters" in show.stdout and "dense_1" in show.stdout and "(None, 256)" in show.stdout
    bad = run_cli(["models", "show", "resnet"])
    assert bad.returncode == 2 and "unknown model 'resnet'" in bad.stderr
