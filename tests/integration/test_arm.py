"""The guide's MLP and CNN, float32 and int8, TFLite and ONNX, on two emulated ARM64
profiles, with agreement asserted; an emulator known to be wrong is refused.

Needs the emulated environment ('edgekit devices setup arm64'); .ci/run builds it in its
ARM stage and runs these with ``pytest -m arm``."""
from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from edgekit import errors
from edgekit.devices.arm import find_env
from edgekit.pipeline import convert

pytestmark = pytest.mark.arm

ENV, WHY = find_env()
needs_env = pytest.mark.skipif(ENV is None, reason=f"no emulated ARM64 environment: {WHY}")
PROFILES = "x86-cpu,arm64-cortex-a53,arm64-cortex-a76"


@needs_env
@pytest.mark.parametrize("model", ["builtin:mlp", "builtin:cnn"])
def test_guide_models_agree_on_two_arm_profiles(model, tmp_path, pool):
    r = convert(model, tmp_path, formats="tflite,onnx", quantize="int8", onnx_quantize="static",
                calibration="digits", devices=PROFILES, pool=pool)
    assert r.exit_code == 0, [(x.label, x.status, x.error, x.devices) for x in r.rows]
    assert [d["name"] for d in r.devices] == PROFILES.split(",")
    by = {x.label: x for x in r.rows}
    assert set(by) == {"tflite", "onnx", "tflite:int8", "onnx:static"}
    for label, row in by.items():
        for dev in ("arm64-cortex-a53", "arm64-cortex-a76"):
            cell = row.devices[dev]
            assert cell.status == "pass" and cell.emulated, (label, dev, cell)
            assert cell.latency["median_ms"] > 0
            d = cell.vs_host["max_abs"]
            if label == "tflite:int8":
                # XNNPACK's int8 kernels on ARM and on x86 requantize alike except for rare
                # ties: measured, the CNN is bit-exact and the MLP's softmax differs by at
                # most one output step (1/256) in a few elements. The cell reports which.
                assert d <= 1 / 256 + 1e-9, (dev, d)
                if model == "builtin:cnn":
                    assert cell.vs_host["bit_exact"], (dev, d)
            elif label == "onnx:static":
                assert d <= 8 / 256 + 1e-6, (dev, d)  # a few output quantization steps at most
            else:
                scale = max(float(np.max(np.abs(o["scale"] or 0.0))) for o in row.comparison.to_json()["outputs"])
                assert d <= 1e-5 * max(scale, 1.0), (label, dev, d)
                assert cell.vs_host["within_tolerance"] is True
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["devices"][1]["self_test"].startswith("float.tflite")
    assert manifest["artifacts"][0]["devices"]["arm64-cortex-a76"]["status"] == "pass"


@needs_env
def test_a_wrong_emulator_is_refused(tmp_path, pool, monkeypatch):
    """Debian bookworm's qemu 7.2 shows the guest the host's CPU (onnxruntime crashes on
    import) and miscomputes int8 kernels as 'max': the self-test must refuse it."""
    if shutil.which("apt-get") is None:
        pytest.skip("no apt-get to fetch the old emulator (a Debian host is needed for this emulated environment)")
    p = subprocess.run(["apt-get", "download", "-q", "qemu-user-static"], cwd=tmp_path, capture_output=True, text=True)
    debs = list(tmp_path.glob("qemu-user-static_*.deb"))
    if p.returncode != 0 or not debs:
        pytest.skip(f"bookworm's qemu-user-static could not be fetched: {p.stderr.strip()[-200:]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tmp_path / "q")], check=True)
    old = tmp_path / "q" / "usr" / "bin" / "qemu-aarch64-static"
    version = subprocess.run([str(old), "--version"], capture_output=True, text=True).stdout
    assert "version 7." in version
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "old.toml").write_text(textwrap.dedent(f"""
        name = "arm64-old-qemu"
        description = "bookworm's qemu 7.2, -cpu max"
        kind = "qemu"
        arch = "aarch64"
        qemu_cpu = "max"
        emulator = "{old}"
        runtimes = ["litert", "onnxruntime"]
    """))
    monkeypatch.setenv("EDGEKIT_DEVICE_PROFILES", str(profiles))
    r = convert("builtin:mlp", tmp_path / "out", formats="tflite,onnx", devices="x86-cpu,arm64-old-qemu", pool=pool)
    cells = [row.devices["arm64-old-qemu"] for row in r.rows]
    assert all(c.status == "unavailable" for c in cells), cells
    assert "failed its known-answer self-test" in cells[0].error
    assert all(row.status == "pass" for row in r.rows)  # the artifacts themselves are fine on the host
    assert r.exit_code == errors.EXIT_FAILED  # but a refused device is never a pass


@needs_env
def test_check_runs_device_cases(tmp_path, pool):
    from edgekit.check.config import load_config
    from edgekit.check.runner import CheckRun

    (tmp_path / "edgekit.toml").write_text(textwrap.dedent("""
        [models.cnn]
        model = "builtin:cnn"
        formats = ["saved_model", "tflite"]
        devices = ["x86-cpu", "arm64-cortex-a72"]
        [models.cnn.budgets]
        max_latency_ms = 0.001
    """))
    rep = CheckRun(load_config(tmp_path / "edgekit.toml"), pool=pool).run()
    cases = {c["id"]: c for c in rep["cases"]}
    arm = cases["cnn/tflite@arm64-cortex-a72"]
    assert arm["status"] == "pass" and arm["emulated"]  # the latency budget is not applied to emulation
    assert any("emulated latency" in n for n in arm["notes"])
    assert cases["cnn/tflite@x86-cpu"]["status"] == "fail"  # native latency is held to it
    assert cases["cnn/saved_model@arm64-cortex-a72"]["status"] == "skipped"  # no TensorFlow on the board


@needs_env
def test_a_crash_in_the_emulated_worker_fails_one_cell_and_the_worker_restarts(tmp_path, pool, monkeypatch):
    monkeypatch.setenv("EDGEKIT_INJECT_CRASH", "run:arm64-cortex-a72:tflite")  # a segfault in the guest
    r = convert("builtin:mlp", tmp_path, formats="tflite,onnx", devices="x86-cpu,arm64-cortex-a72", pool=pool)
    cells = {row.label: row.devices["arm64-cortex-a72"] for row in r.rows}
    assert cells["tflite"].status == "error" and "SIGSEGV" in cells["tflite"].error
    assert cells["onnx"].status == "pass"  # the next artifact ran in a fresh emulated worker
    assert r.exit_code == errors.EXIT_FAILED
