"""The verdict end to end: float64 truth on an ill-conditioned model, non-finite outputs,
and ``edgekit compare`` on files written by the raw tools (TFLiteConverter, tf2onnx)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.compare_files import compare, match_names
from edgekit.errors import InputError, ToleranceExceeded
from edgekit.pipeline import MISMATCH, PASS, convert
from tests.conftest import run_cli

BUILDERS = Path(__file__).resolve().parent.parent / "fixtures" / "verdict_builders.py"
ILL = f"{BUILDERS}:ill_conditioned_cnn"


@pytest.fixture(scope="module")
def raw_files(pool, tmp_path_factory):
    """The ill-conditioned CNN written by the raw tools, and the same model with a 1% bug."""
    d = tmp_path_factory.mktemp("raw")
    good = pool.tf.call("tests.helpers_raw:export_raw", str(BUILDERS), "ill_conditioned_cnn", str(d / "good"),
                        ["tflite", "onnx", "saved_model"], timeout=600)
    bad = pool.tf.call("tests.helpers_raw:export_raw", str(BUILDERS), "ill_conditioned_cnn_bug", str(d / "bad"),
                       ["tflite", "onnx"], timeout=600)
    return good, bad


def test_ill_conditioned_model_passes_against_the_float64_truth(pool, tmp_path):
    res = convert(ILL, tmp_path / "a", formats="tflite,onnx", pool=pool)
    assert [r.status for r in res.rows] == [PASS, PASS] and res.exit_code == 0
    truth = res.feeds_info["truth"]
    assert truth["available"] and truth["ill_conditioned"] == {"logits": True}
    for r in res.rows:
        o = r.comparison.outputs[0]
        # the file differs from Keras by more than the fixed bound, because Keras itself is off
        assert o.max_abs > o.tolerance.bound(o.scale)
        assert o.judged_by == "truth" and o.keras_truth_abs > o.tolerance.bound(o.scale)
        assert o.truth_abs <= 2 * o.keras_truth_abs
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    out = manifest["artifacts"][0]["comparison"]["outputs"][0]
    assert out["truth_abs"] == pytest.approx(res.rows[0].comparison.outputs[0].truth_abs)
    assert manifest["feeds"]["truth"]["keras_float32_error"]["logits"] > 0
    # without the truth, the same correct files fail the fixed bound: the false FAIL it fixes
    off = convert(ILL, tmp_path / "b", formats="tflite,onnx", pool=pool, truth=False)
    assert [r.status for r in off.rows] == [MISMATCH, MISMATCH] and off.exit_code == 3


def test_compare_raw_tool_files_pass_and_a_broken_one_fails(pool, raw_files):
    good, bad = raw_files
    res = compare(ILL, [good["tflite"], good["onnx"], good["saved_model"], bad["tflite"], bad["onnx"]], pool=pool)
    assert [r.status for r in res.rows] == [PASS, PASS, PASS, MISMATCH, MISMATCH]
    assert res.exit_code == 3
    # tf2onnx and TFLite name the output their own way; the only output binds to 'logits'
    assert res.bindings[good["onnx"]]["outputs"] == {"Identity:0": "logits"}
    assert res.bindings[good["tflite"]]["inputs"] == {"image": "image"}
    broken = res.rows[3].comparison.outputs[0]
    assert broken.truth_abs > 2 * broken.keras_truth_abs + broken.tolerance.bound(broken.scale)
    assert "against the float64 model" in res.rows[3].error
    assert compare(ILL, [good["tflite"]], pool=pool).exit_code == 0


def test_compare_refuses_a_model_whose_own_output_is_nan(pool, raw_files):
    with pytest.raises(ToleranceExceeded, match=r"'probs' is NaN at 10 of 10 positions on these inputs"):
        compare(f"{BUILDERS}:nan_output", [raw_files[0]["tflite"]], pool=pool)


def test_compare_refuses_empty_and_nonfinite_inputs(pool, raw_files, tmp_path):
    empty, nan = tmp_path / "empty.npz", tmp_path / "nan.npz"
    np.savez(empty, image=np.zeros((0, 8, 8, 3), np.float32))
    x = np.ones((2, 8, 8, 3), np.float32)
    x[0, 0, 0, 0] = np.nan
    np.savez(nan, image=x)
    with pytest.raises(InputError, match="has no rows"):
        compare(ILL, [raw_files[0]["tflite"]], inputs=str(empty), pool=pool)
    with pytest.raises(InputError, match="1 NaN and 0 inf"):
        compare(ILL, [raw_files[0]["tflite"]], inputs=str(nan), pool=pool)
    # asked for explicitly: the inputs are used, and the model's NaN output is the verdict (exit 3)
    with pytest.raises(ToleranceExceeded, match="is NaN at"):
        compare(ILL, [raw_files[0]["tflite"]], inputs=str(nan), allow_nonfinite_inputs=True, pool=pool)


def test_name_matching_exact_then_sanitized_then_position():
    m, notes = match_names(["serving_default_meta:0", "image"], ["image", "meta"], "input")
    assert m == {"image": "image", "serving_default_meta:0": "meta"} and "by name" in notes[0]
    m, notes = match_names(["a", "b"], ["image", "meta"], "input")
    assert m == {"a": "image", "b": "meta"} and all("POSITION" in n for n in notes)
    with pytest.raises(InputError, match="1 inputs"):
        match_names(["x"], ["image", "meta"], "input")


def test_compare_cli_exit_codes(raw_files, tmp_path):
    good, bad = raw_files
    ok = run_cli(["compare", ILL, good["tflite"], "--json", str(tmp_path / "r.json"), "-q"])
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stdout and "ILL-CONDITIONED" in ok.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["exit_code"] == 0 and data["artifacts"][0]["status"] == "pass"
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer")
    res = run_cli(["compare", ILL, bad["onnx"], str(junk), "-q"])
    assert res.returncode == 1  # one artifact cannot run: 1 wins over 3
    assert "FAIL" in res.stdout and "ERROR" in res.stdout
    assert run_cli(["compare", ILL, bad["onnx"], "-q"]).returncode == 3
    missing = run_cli(["compare", ILL, str(tmp_path / "none.onnx"), "-q"])
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_convert_refuses_empty_inputs_and_a_nan_model_before_writing(pool, tmp_path):
    empty = tmp_path / "empty.npz"
    np.savez(empty, image=np.zeros((0, 8, 8, 3), np.float32))
    with pytest.raises(InputError, match="has no rows"):
        convert(ILL, tmp_path / "a", formats="tflite", inputs=str(empty), pool=pool)
    with pytest.raises(ToleranceExceeded, match=r"'probs' is NaN at 10 of 10 positions on these inputs"):
        convert(f"{BUILDERS}:nan_output", tmp_path / "b", formats="tflite", pool=pool)
    assert not (tmp_path / "a" / "manifest.json").exists() and not (tmp_path / "b" / "manifest.json").exists()
