"""The seven guide models through all six formats, on real TensorFlow, LiteRT and ONNX Runtime."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.converters import FORMATS
from edgekit.fsutil import sha256_of
from edgekit.models.zoo import BUILDERS
from edgekit.pipeline import PASS, convert
from edgekit.runtimes.tflite_ops import list_ops

BUILDERS_PY = Path(__file__).resolve().parent.parent / "fixtures" / "builders.py"
# The two-input model at 224x224 has 24M parameters; tests use a 16x16 image.
MODEL_ARGS = {name: f"builtin:{name}" for name in BUILDERS}
MODEL_ARGS["two_input"] = f"{BUILDERS_PY}:small_two_input"


def test_every_builder_and_format_has_a_test_model():
    assert set(MODEL_ARGS) == set(BUILDERS)
    assert set(FORMATS) == {"saved_model", "keras", "h5", "weights", "tflite", "onnx"}


@pytest.mark.parametrize("name", list(MODEL_ARGS))
def test_guide_model_all_formats_agree(name, pool, tmp_path):
    out = tmp_path / name
    result = convert(MODEL_ARGS[name], out, pool=pool, batch_size=3)
    statuses = {r.format: r.status for r in result.rows}
    errors = {r.format: r.error for r in result.rows if r.error}
    assert statuses == {f: PASS for f in FORMATS}, errors
    assert result.exit_code == 0
    for row in result.rows:
        assert Path(row.path).exists()
        assert row.sha256 == sha256_of(row.path)
        assert row.comparison.passed
        for o in row.comparison.outputs:
            assert o.max_abs <= o.tolerance.bound(o.scale)
            # float32 everywhere: far inside the bound, not just under it
            assert o.max_rel < 1e-4, (row.format, o)
            assert o.cosine > 0.99999
    assert not any(p.name.startswith(".edgekit-staging") for p in out.iterdir())

    tfl = out / "model.tflite"
    ops = list_ops(tfl.read_bytes())
    assert not any(o.custom for o in ops), [o.name for o in ops]

    proto = onnx.load(str(out / "model.onnx"))
    assert proto.opset_import[0].version == 17 or any(i.version == 17 for i in proto.opset_import if i.domain in ("", "ai.onnx"))
    for vi in proto.graph.input:
        assert vi.type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_rnn_tflite_runs_at_several_batch_sizes(name, pool, tmp_path):
    result = convert(MODEL_ARGS[name], tmp_path, formats="keras,tflite", pool=pool)
    assert [r.status for r in result.rows] == [PASS, PASS]
    assert any("unrolled" in n for n in result.rows[1].notes)
    rng = np.random.default_rng(0)
    for batch in (1, 5, 16):
        x = {"sequence": rng.standard_normal((batch, 20, 8)).astype(np.float32)}
        got = pool.rt.call("edgekit.tasks:run_artifact", "litert", str(tmp_path / "model.tflite"), x, 0)["outputs"]
        ref = pool.tf.call("edgekit.tasks:run_artifact", "keras", str(tmp_path / "model.keras"), x, 0)["outputs"]
        (out_name,) = ref
        assert got[out_name].shape[0] == batch
        assert np.abs(got[out_name] - ref[out_name]).max() < 1e-5


def test_inputs_bound_by_name_not_position(pool, tmp_path):
    result = convert(f"{BUILDERS_PY}:same_shape_pair", tmp_path, pool=pool, formats="saved_model,tflite,onnx")
    assert [r.status for r in result.rows] == [PASS] * 3, [r.error for r in result.rows]
    # the formats do order the inputs differently: positional binding would have been wrong
    orders = {}
    for fmt, runtime in [("tflite", "litert"), ("onnx", "onnxruntime")]:
        res = pool.rt.call("edgekit.tasks:run_artifact", runtime, str(tmp_path / FORMATS[fmt].filename),
                           _pair_feeds(), 0)
        orders[fmt] = res["input_names"]
    assert orders["tflite"] == ["a_second", "z_first"], orders
    assert result.spec.input_names == ["z_first", "a_second"]


def _pair_feeds():
    rng = np.random.default_rng(3)
    return {"z_first": rng.standard_normal((2, 4)).astype(np.float32),
            "a_second": rng.standard_normal((2, 4)).astype(np.float32)}


def test_two_input_model_from_npz_in_any_key_order(pool, tmp_path):
    rng = np.random.default_rng(5)
    npz = tmp_path / "in.npz"
    np.savez(npz, meta=rng.random((4, 10), dtype=np.float32), image=rng.random((4, 16, 16, 3), dtype=np.float32))
    result = convert(MODEL_ARGS["two_input"], tmp_path / "out", inputs=str(npz), pool=pool, formats="tflite,onnx")
    assert [r.status for r in result.rows] == [PASS, PASS]
    assert result.feeds_info["batch"] == 4 and result.feeds_info["source"] == str(npz)


@pytest.mark.parametrize("kind", ["cnn.keras", "cnn.h5", "cnn_saved_model"])
def test_file_inputs(kind, keras_files, pool, tmp_path):
    result = convert(keras_files[kind], tmp_path, pool=pool)
    by = {r.format: r for r in result.rows}
    if kind == "cnn_saved_model":
        # no Keras architecture in a SavedModel: those formats are n/a, the rest must pass
        assert {f for f, r in by.items() if r.status == "skipped"} == {"keras", "h5", "weights"}
        assert all(by[f].status == PASS for f in ("saved_model", "tflite", "onnx")), [r.error for r in result.rows]
    else:
        assert all(r.status == PASS for r in result.rows), [r.error for r in result.rows]
    assert result.exit_code == 0
