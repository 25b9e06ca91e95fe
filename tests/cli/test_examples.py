"""The examples/ scripts follow the user guide through the Python API: each one runs."""
from __future__ import annotations

import pytest

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow  # 80 s: the five guide scripts, each in its own process
def test_guide_examples_in_order(tmp_path):
    out = _run("01_build_and_train.py", str(tmp_path / "train"))
    assert "test accuracy" in out
    assert "custom loop: test accuracy" in _run("02_custom_loop.py", str(tmp_path / "custom"))
    deploy = _run("03_convert_quantize_evaluate.py", str(tmp_path / "train" / "model.keras"), str(tmp_path / "deploy"))
    assert "model_int8.tflite" in deploy and "PASS" in deploy
    device = _run("04_on_device.py", str(tmp_path / "deploy" / "model_int8.tflite"))
    assert "predicted classes" in device


@pytest.mark.slow
def test_generate_example(tmp_path):
    out = _run("05_generate.py", str(tmp_path / "gen"))
    assert "generate.tflite: pass, 12/12 next tokens" in out and "generated: [" in out
