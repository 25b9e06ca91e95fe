"""Mistakes in --inputs surface before TensorFlow is imported, and a long load shows life."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from edgekit.precheck import keras_input_specs
from edgekit.specs import ModelSpec
from edgekit.worker import Worker
from tests.conftest import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_keras_config_gives_the_inputs_the_loaded_model_has(keras_files, pool):
    from edgekit.models.source import ModelSource

    for name in ("cnn.keras", "two_input.keras"):
        declared = keras_input_specs(keras_files[name])
        loaded = ModelSpec.from_json(pool.tf.call("edgekit.tasks:inspect_model",
                                                  ModelSource("keras", keras_files[name]).to_json(), timeout=300))
        assert declared is not None
        assert [(s.name, s.shape) for s in declared] == [(s.name, s.shape) for s in loaded.inputs]
    assert keras_input_specs(keras_files["cnn.h5"]) is None  # only .keras is read this way


@pytest.mark.parametrize("arrays, message", [
    ({"imgs": np.zeros((2, 28, 28, 1), np.float32)}, "the model has no input named 'imgs'; its inputs are ['image']"),
    ({"image": np.zeros((2, 32, 32, 1), np.float32)},
     "input 'image' has shape (2, 32, 32, 1); the model expects (batch, 28, 28, 1)"),
])
def test_bad_inputs_fail_before_tensorflow_loads(keras_files, tmp_path, arrays, message):
    x = tmp_path / "x.npz"
    np.savez(x, **arrays)
    t0 = time.monotonic()
    proc = run_cli(["convert", keras_files["cnn.keras"], "--inputs", str(x), "--out", str(tmp_path / "o"), "-q"])
    took = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr
    assert f"edgekit: error: --inputs: {message}" in proc.stderr
    # TensorFlow's import alone takes 5-10 s here; the whole process (python start included)
    # must finish well before that (measured about 0.6 s on the 2-core CI machine)
    assert took < 2.5, took
    assert not (tmp_path / "o").exists()


def test_a_slow_worker_start_reports_progress():
    w = Worker("slow-start", {"EDGEKIT_PRELOAD": "tests.fixtures.slow_import", "PYTHONPATH": ROOT,
                              "EDGEKIT_TEST_IMPORT_DELAY": "2.5"})
    heard: list[str] = []
    try:
        assert w.call("operator:add", 2, 3, timeout=5, on_progress=heard.append, heartbeat_s=1.0) == 5
    finally:
        w.close()
    assert len(heard) >= 2, heard
    assert heard[0] == "... the slow-start worker is importing its libraries (1 s)"


def test_a_long_call_with_progress_gets_a_heartbeat_by_default(monkeypatch):
    import edgekit.worker as worker

    monkeypatch.setattr(worker, "HEARTBEAT_S", 0.5)
    w = Worker("long-call", {"PYTHONPATH": ROOT})
    heard: list[str] = []
    try:
        w.call("operator:add", 0, 0, timeout=30)  # started and warm
        assert w.call("time:sleep", 1.6, timeout=30, tag="export:onnx", on_progress=heard.append) is None
    finally:
        w.close()
    assert heard and all(h.startswith("... export:onnx (") for h in heard), heard
