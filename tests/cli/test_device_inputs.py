"""``run``, ``bench`` and ``predict`` judge inputs the same way before the runtime sees them,
and LiteRT's delegate banner never reaches the user. Uses the packaged self-test artifacts
(no TensorFlow needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

SELFTEST = Path(__file__).resolve().parents[2] / "devices" / "selftest"
ARTIFACTS = ["float.tflite", "int8.tflite", "float.onnx"]


@pytest.fixture()
def bad_inputs(tmp_path):
    shape = tmp_path / "shape.npy"
    np.save(shape, np.zeros((2, 8, 8, 3), np.float32))
    name = tmp_path / "name.npz"
    np.savez(name, img=np.zeros((2, 16, 16, 3), np.float32))
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32))
    return {"shape": shape, "name": name, "good": good}


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_wrong_shape_or_name_is_one_exit_2_line_in_run_and_bench(artifact, bad_inputs):
    path = str(SELFTEST / artifact)
    want = {"shape": "--inputs: input 'image' has shape (2, 8, 8, 3); the model expects (batch, 16, 16, 3)",
            "name": "--inputs: the model has no input named 'img'; its inputs are ['image']"}
    for kind, msg in want.items():
        for cmd in (["run", path, "-i", str(bad_inputs[kind])], ["bench", path, "--inputs", str(bad_inputs[kind])]):
            proc = run_cli(cmd)
            assert proc.returncode == 2, (cmd, proc.stderr)
            assert _one_error_line(proc) == f"edgekit: error: {msg}"


def test_predict_gives_the_same_line(bad_inputs, tmp_path):
    proc = run_cli(["predict", str(SELFTEST / "float.tflite"), "--inputs", str(bad_inputs["shape"]),
                    "--out", str(tmp_path / "y.npz")])
    assert proc.returncode == 2
    assert ("edgekit: error: --inputs: input 'image' has shape (2, 8, 8, 3); the model expects (batch, 16, 16, 3)"
            in proc.stderr)


def test_no_litert_banner_and_raw_on_float_io_says_it_does_nothing(bad_inputs):
    for artifact in ("float.tflite", "int8.tflite"):
        proc = run_cli(["run", str(SELFTEST / artifact), "-i", str(bad_inputs["good"])])
        assert proc.returncode == 0, proc.stderr
        assert "INFO:" not in proc.stderr and "XNNPACK" not in proc.stderr, proc.stderr
        assert "probs[1] top-5" in proc.stdout
    bench = run_cli(["bench", str(SELFTEST / "int8.tflite"), "--runs", "3", "--json"])
    assert bench.returncode == 0 and "INFO:" not in bench.stderr
    raw = run_cli(["run", str(SELFTEST / "int8.tflite"), "-i", str(bad_inputs["good"]), "--raw"])
    assert raw.returncode == 0
    assert "--raw has no effect: int8.tflite takes and returns floats" in raw.stderr
    plain = run_cli(["run", str(SELFTEST / "int8.tflite"), "-i", str(bad_inputs["good"])])
    assert raw.stdout == plain.stdout  # the same floats either way
