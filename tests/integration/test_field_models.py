"""Models of the field with default flags: keras-hub backbones (dict inputs, open sequence
lengths), subclassed and string-input models, grouped convolutions, variable-length RNNs.

The default run covers one model per capability; the whole zoo (tests/fixtures/field_zoo.py)
runs in the slow stage.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.converters import FORMATS
from edgekit.pipeline import PASS, SKIPPED, convert
from tests.conftest import run_cli
from tests.fixtures import field_zoo

ZOO = Path(field_zoo.__file__).resolve()


def _convert(name: str, out: Path, pool, formats: str | None = None, **kw):
    return convert(f"{ZOO}:{name}", out, formats=formats, pool=pool, **kw)


def _rows(result) -> dict:
    return {r.label: r for r in result.rows}


def _assert_all_pass(result) -> None:
    bad = {r.label: (r.status, r.error) for r in result.rows if r.status != PASS}
    assert not bad, bad
    for r in result.rows:
        assert r.comparison.passed
        for o in r.comparison.outputs:
            assert o.max_abs <= o.tolerance.bound(o.scale)


def test_dict_inputs_and_outputs_keep_their_names_in_every_format(pool, tmp_path):
    result = _convert("dict_io", tmp_path / "o", pool)
    _assert_all_pass(result)
    assert result.exit_code == 0
    assert result.spec.input_names == ["zeta", "alpha"]  # the model's own key order, not sorted
    assert sorted(result.spec.output_names) == ["probs", "score"]
    g = onnx.load(str(tmp_path / "o" / "model.onnx")).graph
    assert sorted(i.name for i in g.input) == ["alpha", "zeta"]
    assert sorted(o.name for o in g.output) == ["probs", "score"]
    from edgekit.runtime import load

    pred = load(tmp_path / "o" / "model.tflite")
    assert sorted(pred.input_names) == ["alpha", "zeta"] and sorted(pred.output_names) == ["probs", "score"]


def test_subclassed_model_is_traced_and_exported_to_every_format(pool, tmp_path):
    result = _convert("subclassed", tmp_path / "o", pool)
    _assert_all_pass(result)
    assert set(_rows(result)) == set(FORMATS)
    assert any("subclassed TwoTower traced on input 'x'" in n for n in result.spec.notes)


def test_unbuilt_subclassed_model_asks_for_a_shape_then_converts_with_it(pool, tmp_path):
    from edgekit.errors import InputError

    with pytest.raises(InputError, match=r"--shape x=D1"):
        _convert("subclassed_unbuilt", tmp_path / "a", pool, formats="tflite")
    result = _convert("subclassed_unbuilt", tmp_path / "b", pool, formats="tflite,onnx", shapes={"x": (12,)})
    _assert_all_pass(result)
    assert result.spec.inputs[0].shape == (None, 12)


def test_string_model_exports_its_numeric_part_and_runs_on_text(pool, tmp_path):
    out = tmp_path / "o"
    result = _convert("text_classifier", out, pool)
    _assert_all_pass(result)
    prep = json.loads((out / "preprocessing.json").read_text())["inputs"][0]
    assert prep["input"] == "text" and prep["feeds"] == "vectorize" and prep["output_sequence_length"] == 8
    assert prep["vocabulary"][:2] == ["", "[UNK]"]
    # the check fed texts through Keras and through tokenizer + artifact
    assert result.feeds_info["preprocessing"]["tokenizer_matches_keras"] is True
    assert len(result.feeds_info["texts"]["text"]) == 8
    # `edgekit run --text` gives what the Keras model gives on the same strings
    texts = ["The quick, brown fox!", "hello WORLD qzxv", "a"]
    want = pool.tf.call("tests.helpers_tf:text_model_outputs", str(ZOO), texts, timeout=300)
    res = run_cli(["run", str(out / "model.tflite"), *sum((["--text", t] for t in texts), []),
                   "--output", str(tmp_path / "y.npz")])
    assert res.returncode == 0, res.stderr
    got = np.load(tmp_path / "y.npz")["probs"]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_variable_length_rnn_converts_without_flags(pool, tmp_path):
    result = _convert("lstm_varlen", tmp_path / "o", pool, formats="tflite,onnx")
    _assert_all_pass(result)
    rows = _rows(result)
    assert rows["tflite"].meta["fixed_shapes"] == {"series": [16, 6]}
    assert any("exported at a fixed size: series (batch, 16, 6)" in n for n in rows["tflite"].notes)
    # ONNX keeps the open length, proved at a second size
    second = rows["onnx"].meta["second_size"]
    assert second["passed"] and second["shapes"] == {"series": [2, 8, 6]} and second["max_abs"] < 1e-5
    assert result.feeds_info["shapes"] == {"series": [2, 16, 6]}


def test_grouped_convolution_onnx_comes_from_a_fallback_path(pool, tmp_path):
    result = _convert("grouped_conv", tmp_path / "o", pool, formats="tflite,onnx")
    _assert_all_pass(result)
    row = _rows(result)["onnx"]
    assert row.meta["export_path"] == "tf2onnx-from-tflite"
    assert "StatefulPartitionedCall" in row.meta["paths_tried"][0]
    assert row.comparison.max_abs < 1e-4
    g = onnx.load(str(tmp_path / "o" / "model.onnx")).graph
    assert [i.name for i in g.input] == ["image"] and [o.name for o in g.output] == ["logits"]


def test_bert_backbone_gets_valid_inputs_and_keeps_open_lengths(pool, tmp_path):
    result = _convert("bert", tmp_path / "o", pool, formats="tflite,onnx")
    _assert_all_pass(result)
    spec = {s.name: s for s in result.spec.inputs}
    assert spec["token_ids"].role == "tokens" and spec["token_ids"].int_range == (0, field_zoo.VOCAB)
    assert spec["segment_ids"].role == "segments" and spec["segment_ids"].int_range == (0, 2)
    assert spec["padding_mask"].role == "mask"
    assert sorted(result.spec.output_names) == ["pooled_output", "sequence_output"]
    feeds = result.feeds
    assert feeds["token_ids"].max() >= 100  # the vocabulary, not [0, 2)
    assert feeds["token_ids"].shape == (2, field_zoo.SEQ)  # the declared max_sequence_length
    assert "token ids uniform in [0, 1000)" in result.feeds_info["distribution"]["token_ids"]
    for row in result.rows:
        assert row.meta["second_size"]["passed"], row.label
        assert row.meta["second_size"]["shapes"]["token_ids"] == [2, field_zoo.SEQ // 2]


def test_inputs_behind_preprocessing_layers_are_drawn_in_their_range(pool, tmp_path):
    result = _convert("rescaled_cnn", tmp_path / "a", pool, formats="tflite")
    _assert_all_pass(result)
    (px,) = result.spec.inputs
    assert px.role == "scaled" and px.value_range == (0.0, 255.0)
    assert result.feeds["pixels"].min() >= 0 and result.feeds["pixels"].max() > 200
    assert "[0, 255]" in result.feeds_info["distribution"]["pixels"]
    result = _convert("normalized_mlp", tmp_path / "b", pool, formats="tflite")
    (f,) = result.spec.inputs
    assert f.role == "scaled" and f.value_range == (-9.0, 110.0)  # mean -/+ 2 std over the channels
    assert result.feeds["features"].max() > 50


SLOW_ALL_FORMATS = ["bert", "gpt2", "vit", "resnet"]


# FNet mixes tokens with a 2-D FFT on complex numbers: neither TFLite builtins nor tf2onnx
# express tf.Complex/tf.FFT2D (checked below, precisely).
OUT_OF_REACH = {"fnet"}


@pytest.mark.slow
def test_fnet_fails_with_the_ops_named(pool, tmp_path):
    result = _convert("fnet", tmp_path / "o", pool, formats="tflite,onnx")
    rows = _rows(result)
    assert rows["tflite"].status == "error" and "Complex, FFT2D" in rows["tflite"].error
    assert "Flex" in rows["tflite"].error and len(rows["tflite"].error.splitlines()) == 1
    assert rows["onnx"].status == "error" and "FFT2D" in rows["onnx"].error
    assert result.exit_code == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in field_zoo.HUB + field_zoo.HAND if n not in OUT_OF_REACH])
def test_zoo_model_converts_to_tflite_and_onnx_with_no_flags(name, pool, tmp_path):
    formats = None if name in SLOW_ALL_FORMATS else "tflite,onnx"
    result = _convert(name, tmp_path / name, pool, formats)
    bad = {r.label: (r.status, r.error) for r in result.rows
           if r.status != PASS and not (r.status == SKIPPED and r.format == "h5")}
    assert not bad, bad
    for r in result.rows:
        if r.status == PASS:
            assert min(o.cosine for o in r.comparison.outputs) > 0.9999, r.label


def test_decoders_and_rolls_keep_open_lengths_in_tflite(pool, tmp_path):
    """keras-hub's attention mask (mask[:, None, :, :] on a free length) and keras.ops.roll
    need Flex as traced; written as ExpandDims and a gather they are builtins, so the TFLite
    file keeps the open length instead of being fixed at the check size."""
    builders = Path(__file__).resolve().parent.parent / "fixtures" / "builders.py"
    for model, out in ((f"{ZOO}:llama", "llama"), (f"{builders}:rolled_sequence", "roll")):
        result = convert(model, tmp_path / out, formats="tflite", pool=pool)
        row = _rows(result)["tflite"]
        assert row.status == PASS, row.error
        assert "fixed_shapes" not in row.meta and any(n.startswith("keeps open dimensions") for n in row.notes), row.notes
