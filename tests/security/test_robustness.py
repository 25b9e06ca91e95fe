"""Hostile and broken inputs, interrupted runs, concurrent runs: edgekit's verdict and its
output directory stay trustworthy."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import edgekit.worker
from edgekit.cli import main
from edgekit.verify import verify

FUZZ_SEED = 20261128


def cli_inprocess(argv: list[str]) -> tuple[int, str, str]:
    """The real entry point in this process: a native crash here would kill the test run."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue(), err.getvalue()


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    m = bytearray(data)
    kind = rng.integers(0, 5)
    if kind == 0:  # bit flips
        for _ in range(int(rng.integers(1, 16))):
            i = int(rng.integers(0, len(m)))
            m[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # truncation
        m = m[: int(rng.integers(0, len(m)))]
    elif kind == 2:  # wrong magic / header
        m[: min(8, len(m))] = bytes(rng.integers(0, 256, size=min(8, len(m)), dtype=np.uint8))
    elif kind == 3:  # a huge 32-bit value somewhere (sizes, offsets, dims)
        if len(m) > 8:
            i = int(rng.integers(0, len(m) - 4))
            m[i:i + 4] = (2**31 - 1).to_bytes(4, "little")
    else:  # a block of random bytes
        if len(m) > 64:
            i = int(rng.integers(0, len(m) - 64))
            m[i:i + 64] = bytes(rng.integers(0, 256, size=64, dtype=np.uint8))
    return bytes(m)


@pytest.fixture(scope="module")
def corpus(pool, keras_files, tmp_path_factory):
    from edgekit.pipeline import convert

    d = tmp_path_factory.mktemp("corpus")
    convert("builtin:cnn", d / "cnn", formats="tflite,onnx", pool=pool)
    x = d / "x.npz"
    np.savez(x, pixels=np.random.default_rng(0).random((2, 784), dtype=np.float32))
    return {"tflite": d / "cnn" / "model.tflite", "onnx": d / "cnn" / "model.onnx",
            "keras": Path(keras_files["cnn.keras"]), "h5": Path(keras_files["cnn.h5"]), "npz": x}


def _commands(kind: str, path: Path, work: Path, x_img: Path) -> list[list[str]]:
    if kind in ("tflite", "onnx"):
        return [["inspect", str(path)], ["run", str(path), "-i", str(x_img)]]
    if kind in ("keras", "h5"):
        return [["convert", str(path), "--to", "onnx", "--out", str(work / "out"), "-q"]]
    return [["convert", "builtin:mlp", "--inputs", str(path), "--to", "onnx", "--out", str(work / "out"), "-q"]]


def run_fuzz(corpus: dict[str, Path], tmp_path: Path, per_kind: dict[str, int]) -> dict[str, int]:
    rng = np.random.default_rng(FUZZ_SEED)
    x_img = tmp_path / "x_img.npy"
    np.save(x_img, np.zeros((1, 28, 28, 1), np.float32))
    codes: dict[str, int] = {}
    tried = 0
    for kind, n in per_kind.items():
        data = corpus[kind].read_bytes()
        for i in range(n):
            p = tmp_path / f"m{i}{corpus[kind].suffix}"
            p.write_bytes(mutate(data, rng))
            for argv in _commands(kind, p, tmp_path, x_img):
                t0 = time.monotonic()
                code, out, err = cli_inprocess(argv)
                tried += 1
                assert code in (0, 1, 2, 3), (kind, i, argv, code, err[-500:])
                assert "Traceback" not in out + err, (kind, i, argv, err[-2000:])
                if code == 2:
                    lines = [ln for ln in err.splitlines() if ln.startswith("edgekit: error:")]
                    assert len(lines) == 1, (kind, i, err)
                assert time.monotonic() - t0 < 120, (kind, i, "took too long")
                codes[f"{kind}:{code}"] = codes.get(f"{kind}:{code}", 0) + 1
            shutil.rmtree(tmp_path / "out", ignore_errors=True)
    codes["tried"] = tried
    return codes


def test_fuzz_corpus_fixed_seed(corpus, pool, tmp_path, monkeypatch):
    monkeypatch.setattr(edgekit.worker, "_DEFAULT_POOL", pool)
    codes = run_fuzz(corpus, tmp_path, {"tflite": 50, "onnx": 50, "keras": 25, "h5": 25, "npz": 30})
    print("fuzz outcomes:", codes)
    assert codes["tried"] == 50 * 2 + 50 * 2 + 25 + 25 + 30
    # mutations are not all harmless: the corpus really exercises the error paths
    assert sum(v for k, v in codes.items() if k.endswith(":2") or k.endswith(":1")) > 50


@pytest.mark.slow
def test_fuzz_campaign_long(corpus, pool, tmp_path, monkeypatch):
    monkeypatch.setattr(edgekit.worker, "_DEFAULT_POOL", pool)
    n = int(os.environ.get("EDGEKIT_FUZZ_N", "300"))
    codes = run_fuzz(corpus, tmp_path, {"tflite": n, "onnx": n, "keras": n // 4, "h5": n // 4, "npz": n // 3})
    print("fuzz campaign outcomes:", codes)
    assert codes["tried"] > 0


def _edgekit(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "from edgekit.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def _check_invariant(out: Path) -> None:
    """A manifest, if present, matches every file it lists; nothing listed is partial."""
    if (out / "manifest.json").exists():
        res = verify(str(out))
        assert res["ok"], res
    for f in out.iterdir():
        if f.is_file() and f.name not in (".edgekit.lock", "manifest.json", "model.json"):
            assert not f.name.endswith(".tmp"), f  # atomic writes leave no temp names behind...
            assert f.stat().st_size > 0, f  # ...and no empty placeholders


@pytest.mark.slow  # 65 s: five runs killed at random points (SIGKILL, SIGTERM, SIGINT)
def test_kill_at_random_points_keeps_the_directory_consistent(tmp_path):
    out = tmp_path / "out"
    first = _edgekit(["convert", "builtin:cnn", "--out", str(out), "-q"])
    assert first.wait(timeout=300) == 0
    assert verify(str(out))["ok"]
    rng = np.random.default_rng(7)
    sigs = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGTERM]
    for sig in sigs:
        proc = _edgekit(["convert", "builtin:cnn", "--out", str(out), "-q"])
        # after interpreter start-up (a signal before main() runs kills a process that has
        # written nothing yet), anywhere in loading, exporting, checking or publishing
        time.sleep(float(rng.uniform(1.5, 7.0)))
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
        err = proc.stderr.read().decode()
        assert "Traceback" not in err, err
        if sig != signal.SIGKILL and code != 0:
            assert code in (130, -signal.SIGTERM), (sig, code, err)
            # this run removed its own staging (a SIGKILLed run's is removed by the next
            # run only once it holds the directory's lock, which this one may not have reached)
            assert not (out / f".edgekit-staging-{proc.pid}").exists()
        _check_invariant(out)
    # the next run completes, cleans leftovers of killed runs, and verifies
    last = _edgekit(["convert", "builtin:cnn", "--out", str(out), "-q"])
    assert last.wait(timeout=300) == 0
    res = verify(str(out))
    assert res["ok"] and not res["leftovers"] and res["checked"] == 6


def test_second_run_into_the_same_directory_refuses(tmp_path):
    out = tmp_path / "out"
    # run A hangs in its ONNX export (until its timeout): it holds the directory meanwhile
    a = _edgekit(["convert", "builtin:conv1d", "--out", str(out), "--to", "tflite,onnx", "--timeout", "60", "-q"],
                 env={"EDGEKIT_INJECT_CRASH": "export:onnx=hang"})
    deadline = time.monotonic() + 120
    while not (out.exists() and any(p.name.startswith(".edgekit-staging") for p in out.iterdir())):
        assert time.monotonic() < deadline and a.poll() is None
        time.sleep(0.05)
    b = _edgekit(["convert", "builtin:conv1d", "--out", str(out), "-q"])
    assert b.wait(timeout=120) == 2
    assert "another edgekit run is writing to" in b.stderr.read().decode()
    assert a.poll() is None  # A was never disturbed
    a.send_signal(signal.SIGTERM)
    assert a.wait(timeout=60) == 130
    assert not any(p.name.startswith(".edgekit-staging") for p in out.iterdir())


def test_hung_converter_is_stopped_at_the_timeout(tmp_path):
    t0 = time.monotonic()
    p = _edgekit(["convert", "builtin:mlp", "--out", str(tmp_path), "--to", "onnx,tflite", "--timeout", "5", "-q"],
                 env={"EDGEKIT_INJECT_CRASH": "export:onnx=hang"})
    assert p.wait(timeout=180) == 1
    out = p.stdout.read().decode()
    assert "did not finish within 5 s" in out and "PASS" in out
    assert time.monotonic() - t0 < 120
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert {a["format"]: a["status"] for a in m["artifacts"]} == {"tflite": "pass", "onnx": "error"}


def test_custom_objects_only_when_named(tmp_path, pool):
    mod = tmp_path / "layers.py"
    mod.write_text(
        "import keras\n"
        "@keras.saving.register_keras_serializable(package='test')\n"
        "class Scale(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return x * 3.0\n"
        "def build():\n"
        "    x = keras.Input((4,), name='x')\n"
        "    return keras.Model(x, keras.layers.Dense(2, name='y')(Scale(name='scale')(x)))\n"
    )
    saved = tmp_path / "custom.keras"
    pool.tf.call("tests.helpers_tf:save_from_builder", str(mod), "build", str(saved), timeout=120)
    code, out, err = cli_inprocess(["convert", str(saved), "--out", str(tmp_path / "a"), "--to", "keras,onnx", "-q"])
    assert code == 2 and "--custom-objects" in err and "Traceback" not in err
    code, out, err = cli_inprocess(["convert", str(saved), "--custom-objects", str(mod), "--out", str(tmp_path / "b"),
                                    "--to", "tflite,onnx", "-q"])
    assert code == 0, err + out
    assert out.count("PASS") == 2


def test_memory_guard_refuses_before_loading(tmp_path, monkeypatch):
    import h5py

    import edgekit.memguard as memguard

    big = tmp_path / "big.h5"
    with h5py.File(big, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
        f.create_dataset("w", data=np.zeros(1_000_000, np.float32))
    monkeypatch.setattr(memguard, "available_memory", lambda: 1024 * 1024)  # 1 MiB free
    code, out, err = cli_inprocess(["convert", str(big), "--out", str(tmp_path / "o")])
    assert code == 2 and "declares 3.8 MiB" in err and "22.9 MiB (6x)" in err and "1.0 MiB is available" in err
    assert not (tmp_path / "o").exists()


def _limit_file_size() -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_out_of_space_leaves_earlier_output_untouched(tmp_path):
    out = tmp_path / "out"
    first = _edgekit(["convert", "builtin:mlp", "--out", str(out), "-q"])
    assert first.wait(timeout=300) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # every file over 64 KiB fails to write, as on a full disk (the workers inherit the limit)
    proc = subprocess.run([sys.executable, "-c", "from edgekit.cli import main; main()", "convert", "builtin:mlp",
                           "--out", str(out), "-q"], capture_output=True, text=True, preexec_fn=_limit_file_size,
                          timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors_ = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgekit: error:")]
    assert len(errors_) == 1 and "File too large" in errors_[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # byte for byte, manifest included
    assert not any(p.name.startswith(".edgekit-staging") for p in out.iterdir())
    assert verify(str(out))["ok"]
