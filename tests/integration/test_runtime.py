"""edgekit.runtime and the device commands: equal to the bare interpreter, no TensorFlow."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.runtime import load
from tests.conftest import run_cli

MODELS = ["mlp", "two_input", "cnn"]
MODES = ["float32", "dynamic", "float16", "int8"]


@pytest.fixture(scope="module")
def tflite_files(pool, tmp_path_factory):
    d = tmp_path_factory.mktemp("tflite")
    return {n: pool.tf.call("tests.helpers_tf:make_quantized_tflite", n, str(d), timeout=600) for n in MODELS}


def _feeds(pred, batch, seed=0):
    rng = np.random.default_rng(seed)
    return {t.name: rng.random((batch, *t.shape[1:]), dtype=np.float32) for t in pred.inputs}


def _bare_interpreter(path, feeds):
    """The interpreter called directly: signature runner, quantizing by hand where needed."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path)
    runner = it.get_signature_runner()
    details = runner.get_input_details()
    args = {}
    for name, x in feeds.items():
        d = details[name]
        scale, zp = d["quantization"]
        if d["dtype"] != np.float32 and scale:
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(x / scale) + zp, info.min, info.max).astype(d["dtype"])
        args[name] = x
    out = runner(**args)
    res = {}
    for name, y in out.items():
        scale, zp = runner.get_output_details()[name]["quantization"]
        res[name] = (y.astype(np.float32) - zp) * scale if y.dtype != np.float32 and scale else y
    return res


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch", [1, 8])
def test_predictor_equals_bare_interpreter(tflite_files, name, mode, batch):
    path = tflite_files[name][mode]
    pred = load(path)
    feeds = _feeds(pred, batch)
    got = pred.predict(feeds)
    want = _bare_interpreter(path, feeds)
    assert set(got) == set(want)
    for k in want:
        assert got[k].shape[0] == batch
        np.testing.assert_array_equal(got[k], want[k])


def test_int8_io_quantized_and_raw(tflite_files):
    path = tflite_files["mlp"]["int8"]
    pred = load(path)
    (inp,) = pred.inputs
    assert inp.dtype == "int8" and inp.quantized
    x = np.random.default_rng(1).random((4, 784), dtype=np.float32)
    floats = pred.predict(x)["probs"]
    assert floats.dtype == np.float32 and np.allclose(floats.sum(axis=1), 1.0, atol=0.05)
    raw = load(path, raw_io=True)
    q = np.clip(np.round(x / inp.scale) + inp.zero_point, -128, 127).astype(np.int8)
    raw_out = raw.predict(q)["probs"]
    assert raw_out.dtype == np.int8
    out_info = raw.outputs[0]
    np.testing.assert_array_equal((raw_out.astype(np.float32) - out_info.zero_point) * out_info.scale, floats)
    with pytest.raises(InputError, match="expects int8"):
        raw.predict(x)


def test_multi_input_needs_names(tflite_files):
    pred = load(tflite_files["two_input"]["float32"])
    with pytest.raises(InputError, match="pass a dict keyed by name"):
        pred.predict(np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(InputError, match="missing \\['meta'\\]"):
        pred.predict({"image": np.zeros((1, 16, 16, 3), np.float32)})


def test_onnx_predictor_threads_and_batches(pool, tmp_path):
    from edgekit.pipeline import convert

    convert("builtin:cnn", tmp_path, formats="onnx,tflite", pool=pool)
    onnx_pred = load(tmp_path / "model.onnx", threads=1)
    tfl_pred = load(tmp_path / "model.tflite", threads=2, xnnpack=False)
    for batch in (1, 8):
        x = np.random.default_rng(batch).random((batch, 28, 28, 1), dtype=np.float32)
        a, b = onnx_pred.predict(x)["probs"], tfl_pred.predict(x)["probs"]
        assert a.shape == (batch, 10) and np.abs(a - b).max() < 1e-5


NO_TF_SCRIPT = r"""
import sys
from edgekit.cli import main
import edgekit.runtime
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit as e:
        assert e.code in (0, None, 3), (argv, e.code)
heavy = [m for m in ("tensorflow", "keras", "tf2onnx", "tf_keras") if m in sys.modules]
print("HEAVY=" + ",".join(heavy))
"""


def test_run_bench_inspect_never_import_tensorflow(tflite_files, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 784), np.float32))
    f = tflite_files["mlp"]["int8"]
    argvs = [["run", f, "-i", str(x), "-o", str(tmp_path / "y.npz")], ["bench", f, "--runs", "5", "--json"],
             ["inspect", f, "--runtime", "tflite-runtime==2.14"], ["inspect", f, "--runtime", "installed"]]
    proc = subprocess.run([sys.executable, "-c", NO_TF_SCRIPT.format(argvs=argvs)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout[-500:]
    y = np.load(tmp_path / "y.npz")
    assert y["probs"].shape == (2, 10) and y["probs_classes"].shape == (2,)


def test_inspect_flags_flex_ops(pool, tmp_path):
    path = tmp_path / "flex.tflite"
    pool.tf.call("tests.helpers_tf:make_flex_tflite", str(path), timeout=300)
    proc = run_cli(["inspect", str(path), "--json"])
    info = json.loads(proc.stdout)
    assert info["flex_ops"] and all(n.startswith("Flex") for n in info["flex_ops"])
    assert info["runnable_here"] is False and "Select TensorFlow op" in info["load_error"]
    proc = run_cli(["inspect", str(path), "--runtime", "ai-edge-litert==2.3"])
    assert proc.returncode == 3 and "(custom op) is not a builtin" in proc.stdout


def test_inspect_finds_op_version_too_new_for_old_runtime(tflite_files):
    dyn = tflite_files["mlp"]["dynamic"]
    proc = run_cli(["inspect", dyn, "--runtime", "tflite-runtime==2.14"])
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "FULLY_CONNECTED version 12 (runtime has 1..10)" in proc.stdout
    ok = run_cli(["inspect", tflite_files["mlp"]["float32"], "--runtime", "tflite-runtime==2.14"])
    assert ok.returncode == 0 and "runnable on tflite-runtime 2.14.0" in ok.stdout
    # the runtime installed here runs it: probed live, not from a table
    live = run_cli(["inspect", dyn, "--runtime", "installed", "--json"])
    assert live.returncode == 0 and json.loads(live.stdout)["incompatible"] == []


def test_bench_reports_percentiles(tflite_files):
    proc = run_cli(["bench", tflite_files["cnn"]["int8"], "--batch", "4", "--runs", "30", "--json"])
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["batch"] == 4 and r["runs"] == 30
    assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
    assert r["throughput_samples_per_s"] > 0 and r["peak_rss_mb"] > 10 and r["load_ms"] > 0


def test_run_prints_topk_and_reads_images(tflite_files, tmp_path):
    from PIL import Image

    img = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((40, 30)) * 255).astype(np.uint8)).save(img)
    proc = run_cli(["run", tflite_files["cnn"]["float32"], "-i", str(img), "--top-k", "3"])
    assert proc.returncode == 0, proc.stderr
    assert "resized to 28x28, 1 channel(s), scaled to [0, 1]" in proc.stderr
    assert "probs[0] top-3:" in proc.stdout


def test_convert_target_runtime_fails_tflite_that_would_not_run(pool, tmp_path):
    from edgekit.pipeline import ERROR, PASS, convert

    table = {"runtime": "board-runtime", "version": "1.0", "method": "hand-written for the test",
             "ops": {"FULLY_CONNECTED": [2, 3], "SOFTMAX": [1]}}
    tpath = tmp_path / "board.json"
    tpath.write_text(json.dumps(table))
    r = convert("builtin:mlp", tmp_path / "out", formats="tflite,onnx", target_runtime=str(tpath), pool=pool)
    tfl, onx = r.rows
    assert tfl.status == ERROR and tfl.stage == "compat"
    assert "would not run on board-runtime 1.0: FULLY_CONNECTED version 1 (runtime has 2..3)" in tfl.error
    assert not (tmp_path / "out" / "model.tflite").exists()
    assert onx.status == PASS and r.exit_code == 1


def _device_venv(tmp_path, packages: list[str], no_deps: bool = True):
    """A fresh venv with edgekit (``no_deps``: without its dependencies) and ``packages``."""
    import os
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *(["--no-deps"] if no_deps else []), str(repo)], check=True, timeout=600)
    if packages:
        subprocess.run([*pip, *packages], check=True, timeout=600)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return venv, env


@pytest.mark.slow
def test_runtime_only_install_without_tensorflow(tmp_path, tflite_files):
    """The documented device install, the plain `pip install edgekit`: no TensorFlow, and the
    commands that need the converter say so in one line."""
    venv, env = _device_venv(tmp_path, [], no_deps=False)
    edgekit = str(venv / "bin" / "edgekit")
    for heavy in ("tensorflow", "keras", "tf2onnx", "onnx"):
        check = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {heavy}"], capture_output=True)
        assert check.returncode != 0, f"{heavy} must not be installed by the plain install"
    conv = subprocess.run([edgekit, "convert", "builtin:mlp"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert conv.returncode == 2 and "Traceback" not in conv.stderr, conv.stderr
    assert 'edgekit convert needs the converter dependencies: pip install "edgekit[convert]"' in conv.stderr
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 784), np.float32))
    for args in (["run", tflite_files["mlp"]["int8"], "-i", str(x)],
                 ["inspect", tflite_files["mlp"]["dynamic"], "--runtime", "tflite-runtime==2.14"],
                 ["bench", tflite_files["cnn"]["float32"], "--runs", "5"]):
        proc = subprocess.run([edgekit, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode in (0, 3), (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert "probs[0] top-5" in subprocess.run([edgekit, "run", tflite_files["mlp"]["int8"], "-i", str(x)],
                                              capture_output=True, text=True, env=env, cwd=tmp_path).stdout


@pytest.mark.slow
def test_tflite_runtime_only_device(tmp_path, tflite_files):
    """A board that carries only the old tflite-runtime (numpy 1): run and bench work with it."""
    venv, env = _device_venv(tmp_path, ["tflite-runtime==2.14.0", "numpy<2", "click"])
    edgekit = str(venv / "bin" / "edgekit")
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32))
    run = subprocess.run([edgekit, "run", tflite_files["cnn"]["float32"], "-i", str(x), "-o", str(tmp_path / "y.npz")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    # same numbers as ai-edge-litert here
    want = load(tflite_files["cnn"]["float32"]).predict(np.load(x))["probs"]
    assert np.abs(np.load(tmp_path / "y.npz")["probs"] - want).max() < 1e-5
    bench = subprocess.run([edgekit, "bench", tflite_files["cnn"]["float32"], "--runs", "10", "--json"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert bench.returncode == 0 and json.loads(bench.stdout)["backend"] == "tflite-runtime"
    insp = subprocess.run([edgekit, "inspect", tflite_files["cnn"]["float32"]], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert insp.returncode == 2 and "schema module of ai-edge-litert" in insp.stderr and "Traceback" not in insp.stderr
