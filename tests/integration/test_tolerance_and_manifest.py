"""The tolerance policy end to end, and what manifest.json records."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.errors import InputError
from edgekit.fsutil import sha256_of, size_of
from edgekit.pipeline import MISMATCH, PASS, convert

BUILDERS_PY = Path(__file__).resolve().parent.parent / "fixtures" / "builders.py"


def test_large_magnitude_output_passes_scaled_policy_and_fails_absolute(pool, tmp_path):
    model = f"{BUILDERS_PY}:multi_output"
    ok = convert(model, tmp_path / "a", formats="tflite,onnx", pool=pool, batch_size=8)
    assert [r.status for r in ok.rows] == [PASS, PASS]
    big = [o for r in ok.rows for o in r.comparison.outputs if o.name == "big"]
    assert all(o.scale > 1000 for o in big)
    # the large output's float32 rounding differences are real but tiny relative to its
    # magnitude; the float32 policy's atol alone (1e-4, no scaling) fails them
    strict = convert(model, tmp_path / "b", formats="tflite,onnx", pool=pool, batch_size=8,
                     atol={"big": 1e-4}, rtol={"big": 0.0})
    statuses = [r.status for r in strict.rows]
    assert MISMATCH in statuses and strict.exit_code == 3
    failed = [r for r in strict.rows if r.status == MISMATCH][0]
    assert "big" in failed.error and failed.stage == "compare"
    logits = [o for o in failed.comparison.outputs if o.name == "logits"][0]
    assert logits.passed and logits.tolerance.source.startswith("default")


def test_tolerance_for_unknown_output_is_an_input_error(pool, tmp_path):
    with pytest.raises(InputError, match="unknown output"):
        convert("builtin:mlp", tmp_path, atol={"nope": 1.0}, pool=pool)
    assert not tmp_path.joinpath("manifest.json").exists()


def test_manifest_records_every_artifact_and_comparison(pool, tmp_path):
    result = convert("builtin:conv1d", tmp_path, pool=pool, seed=11, batch_size=4, opset=15)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["manifest_version"] == 1 and m["exit_code"] == 0
    assert m["source"]["kind"] == "builtin" and m["source"]["location"] == "conv1d"
    assert m["feeds"] == {**m["feeds"], "source": "random", "seed": 11, "batch": 4}
    assert m["model"]["inputs"][0]["name"] == "signal"
    assert m["model"]["outputs"][0]["name"] == "probs"
    for tool in ("tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy"):
        assert tool in m["tools"], tool
    assert [a["format"] for a in m["artifacts"]] == ["saved_model", "keras", "h5", "weights", "tflite", "onnx"]
    for a in m["artifacts"]:
        p = tmp_path / a["path"]
        assert a["sha256"] == sha256_of(p)
        assert a["size"] >= size_of(p)
        assert a["status"] == "pass" and a["comparison"]["passed"]
        assert a["inputs"][0]["shape"] == [None, 64, 3]
        out = a["comparison"]["outputs"][0]
        assert out["name"] == "probs" and out["max_abs"] is not None and out["tolerance"]["atol"] > 0
        assert a["latency"]["median_ms"] > 0
    onnx_entry = [a for a in m["artifacts"] if a["format"] == "onnx"][0]
    assert onnx_entry["meta"]["opset"] == 15
    weights = [a for a in m["artifacts"] if a["format"] == "weights"][0]
    assert weights["meta"]["extra_files"]["model.json"] == sha256_of(tmp_path / "model.json")
    assert result.manifest_path == tmp_path / "manifest.json"
