"""Attack 6: a manifest that makes `edgekit verify` read outside its directory: /dev/zero
(a hang), any absolute path (a probe for whether a file with a given hash exists), symlinks."""
from __future__ import annotations

import hashlib
import os
import time

from edgekit.verify import verify
from tests.security.conftest import edgekit, write_json


def _manifest(d, *entries):
    write_json(d / "manifest.json", {"manifest_version": 1, "artifacts": [
        {"path": p, "sha256": h, "format": "tflite"} for p, h in entries]})


def test_dev_zero_does_not_hang(tmp_path):
    _manifest(tmp_path, ("/dev/zero", "0" * 64), ("../../../../dev/zero", "0" * 64))
    t0 = time.monotonic()
    proc = edgekit(["verify", str(tmp_path)], timeout=60)
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 1 and "outside the directory" in proc.stdout, proc.stdout + proc.stderr


def test_absolute_path_cannot_probe_a_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("api-key")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    d = tmp_path / "out"
    d.mkdir()
    _manifest(d, (str(secret), digest))
    res = verify(str(d))
    assert not res["ok"] and res["problems"] == [f"{secret}: outside the directory (only relative paths inside it are checked)"]


def test_symlink_and_devices_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("api-key")
    d = tmp_path / "out"
    (d / "saved_model").mkdir(parents=True)
    (d / "link.tflite").symlink_to(secret)
    (d / "saved_model" / "inner").symlink_to(secret)
    os.mkfifo(d / "fifo.onnx")
    good = d / "model.onnx"
    good.write_bytes(b"onnx")
    _manifest(d, ("link.tflite", hashlib.sha256(b"api-key").hexdigest()), ("saved_model", "x"),
              ("fifo.onnx", "x"), ("model.onnx", hashlib.sha256(b"onnx").hexdigest()))
    res = verify(str(d))
    assert res["checked"] == 4
    assert res["problems"] == ["link.tflite: a symbolic link (not followed)",
                               "saved_model: holds saved_model/inner, which is not a regular file",
                               "fifo.onnx: not a regular file"]
