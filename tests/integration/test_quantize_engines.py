"""Quantization on the field's engines: the LiteRT Quantizer (int4 blockwise, static modes
with float I/O, embedding tables), ONNX Runtime int4 and its dynamic choice on hosts
without VNNI, the per-layer search and hand-written recipes, and every kernel path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.pipeline import ERROR, MISMATCH, PASS, SKIPPED, convert
from tests.conftest import run_cli

BUILDERS = Path(__file__).resolve().parent.parent / "fixtures" / "builders.py"
TOKEN_LM = f"{BUILDERS}:token_lm"


def _rows(result):
    return {r.label: r for r in result.rows}


@pytest.fixture(scope="module")
def token_lm_run(pool, tmp_path_factory):
    out = tmp_path_factory.mktemp("token_lm")
    r = convert(TOKEN_LM, out, formats="tflite,onnx", quantize="dynamic,int4,int4:128", onnx_quantize="int4",
                pool=pool)
    return r, out


def test_int4_is_small_with_embeddings_and_fails_on_the_reference_kernels(token_lm_run):
    r, out = token_lm_run
    rows = _rows(r)
    f32 = rows["tflite"].size
    int4 = rows["tflite:int4"]
    assert int4.status == PASS, int4.error
    assert int4.size <= 0.25 * f32, int4.size / f32  # the embedding table is int4 too
    assert any("EMBEDDING_LOOKUP" in n for n in int4.notes)
    assert int4.meta["engine"] == "litert-quantizer"
    layers = {x["layer"]: x["precision"] for x in int4.meta["layers"]}
    assert layers["embed"] == "int4" and layers["lm_head"] == "int4" and layers["ffn_up"] == "int4"
    assert layers["narrow"] == "int8"  # 48 inputs: block 32 does not divide them
    # blockwise int4 has no reference kernel: outputs are zero there, a failed cell naming the path
    ref = int4.kernels["reference"]
    assert ref.status == MISMATCH and "every output is zero" in ref.error and "reference kernels" in ref.error
    assert any(n.startswith("kernel paths: deploy on xnnpack; fails on reference") for n in int4.notes)
    assert rows["tflite:dynamic"].kernels["reference"].status == PASS  # int8 kernels exist on both paths
    assert r.exit_code == 3  # a failed kernel path is a breach
    m = json.loads((out / "manifest.json").read_text())
    a = next(a for a in m["artifacts"] if a["label"] == "tflite:int4")
    assert a["kernels"]["reference"]["status"] == "mismatch" and a["recipe"]["block_size"] == 32


def test_int4_block_128_and_onnx_int4(token_lm_run):
    r, _ = token_lm_run
    rows = _rows(r)
    b128 = rows["tflite:int4:128"]
    assert b128.status == PASS and b128.recipe.block_size == 128 and b128.filename == "model_int4_b128.tflite"
    assert any("block 128 does not divide" in n and "ffn_up" in n for n in b128.notes)
    onnx4 = rows["onnx:int4"]
    assert onnx4.status == PASS, onnx4.error
    assert onnx4.size <= 0.30 * rows["onnx"].size, onnx4.size / rows["onnx"].size
    assert onnx4.comparison.min_snr_db > 12


def test_kernels_option_narrows_the_paths(pool, tmp_path):
    r = convert(TOKEN_LM, tmp_path, formats="tflite", quantize="int4", kernels="xnnpack", pool=pool)
    row = _rows(r)["tflite:int4"]
    assert row.status == PASS and row.kernels == {} and r.exit_code == 0
    with pytest.raises(InputError, match="unknown kernel path 'gpu'"):
        convert(TOKEN_LM, tmp_path / "x", formats="tflite", quantize="int4", kernels="gpu", pool=pool)


def test_auto_raises_the_layers_that_cost_most(pool, tmp_path):
    # 'first' has all-zero weight rows: its int4 blocks get scale 0, which XNNPACK refuses;
    # 'fragile' loses everything at int4 and nothing at int8; 'last' stays int4
    r = convert(f"{BUILDERS}:fragile_layer", tmp_path, formats="tflite", quantize="int4,auto", kernels="xnnpack",
                pool=pool)
    rows = _rows(r)
    assert rows["tflite:int4"].status == ERROR and "scale" in rows["tflite:int4"].error
    auto = rows["tflite:auto"]
    assert auto.status == PASS, auto.error
    layers = {x["layer"]: x["precision"] for x in auto.meta["layers"]}
    assert layers == {"first": "int8", "fragile": "int8", "last": "int4"}, layers
    s = auto.meta["search"]
    assert s["layer_cost_db"]["first"] is None and s["layer_cost_db"]["fragile"] < 10 < s["layer_cost_db"]["last"]
    assert s["steps"][-1]["passed"] and not s["steps"][0]["passed"]
    assert auto.comparison.min_snr_db >= 20
    assert any("layers: first=int8, fragile=int8, last=int4" == n for n in auto.notes)


def test_auto_leaves_int4_out_when_the_reference_kernels_are_checked(pool, tmp_path):
    r = convert(TOKEN_LM, tmp_path, formats="tflite", quantize="auto", pool=pool)
    row = _rows(r)["tflite:auto"]
    assert row.status == PASS and r.exit_code == 0, row.error
    assert {x["precision"] for x in row.meta["layers"]} <= {"int8", "float"}
    assert any("int4 left out" in n for n in row.notes)
    assert row.kernels["reference"].status == PASS


def test_recipe_by_hand(pool, tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('default = "int8"\n[layers]\n"ffn_.*" = "int4"\n"lm_head" = "float"\n')
    r = convert(TOKEN_LM, tmp_path / "o", formats="tflite", quantize_recipe=str(recipe), kernels="xnnpack", pool=pool)
    row = _rows(r)["tflite:recipe"]
    assert row.status == PASS, row.error
    layers = {x["layer"]: x["precision"] for x in row.meta["layers"]}
    assert layers["ffn_up"] == layers["ffn_gate"] == layers["ffn_down"] == "int4"
    assert layers["lm_head"] == "float" and layers["embed"] == "int8" and layers["squeeze"] == "int8"
    # a pattern that names no layer: the row says which layers there are
    recipe.write_text('[layers]\n"decoder_.*" = "int4"\n')
    r = convert(TOKEN_LM, tmp_path / "p", formats="tflite", quantize_recipe=str(recipe), pool=pool)
    row = _rows(r)["tflite:recipe"]
    assert row.status == ERROR and "match no layer" in row.error and "lm_head" in row.error


@pytest.mark.parametrize("text, message", [
    ('[layers]\n"x" = "int3"\n', "layers.x = 'int3': choose from int4, int8, float"),
    ('[layers]\n"(" = "int4"\n', "is not a valid regular expression"),
    ('precision = "int4"\n[layers]\n"x" = "int4"\n', "unknown key(s) ['precision']"),
    ('block_size = 48\n[layers]\n"x" = "int4"\n', "block_size = 48: choose from 32, 64, 128, 256"),
    ('default = "int8"\n', "[layers] must be a table"),
])
def test_recipe_errors_are_one_line(tmp_path, text, message):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    proc = run_cli(["convert", "builtin:mlp", "--to", "tflite", "--quantize-recipe", str(recipe),
                    "--out", str(tmp_path / "o")])
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_int4_on_a_model_without_dense_weights_is_na(pool, tmp_path):
    r = convert(f"{BUILDERS}:conv_only", tmp_path, formats="tflite,onnx", quantize="int4", onnx_quantize="int4",
                pool=pool)
    rows = _rows(r)
    assert rows["tflite:int4"].status == SKIPPED and "CONV_2D" in rows["tflite:int4"].error
    assert "every op stays float" in rows["tflite:int4"].error
    assert rows["onnx:int4"].status == SKIPPED and "stays float" in rows["onnx:int4"].error
    assert r.exit_code == 0


def test_int4_where_no_block_fits_is_na(pool, tmp_path):
    r = convert(f"{BUILDERS}:odd_dense", tmp_path, formats="tflite,onnx", quantize="int4", onnx_quantize="int4",
                pool=pool)
    rows = _rows(r)
    assert rows["tflite:int4"].status == SKIPPED and "multiple of the int4 block 32" in rows["tflite:int4"].error
    # ONNX Runtime pads a weight whose input size the block does not divide: int4 all the same
    assert rows["onnx:int4"].status == PASS and rows["onnx:int4"].size < rows["onnx"].size
    assert r.exit_code == 0


def test_onnx_int4_of_a_text_model_keeps_a_graph_onnx_runtime_loads(pool, tmp_path):
    # ONNX Runtime's int4 Gather writes a graph it rejects itself for this model (the
    # embedding feeds a ReduceMean); the table then stays float, and the row says so
    zoo = Path(__file__).resolve().parent.parent / "fixtures" / "field_zoo.py"
    r = convert(f"{zoo}:text_classifier", tmp_path, formats="onnx", onnx_quantize="int4", pool=pool)
    row = _rows(r)["onnx:int4"]
    assert row.status == PASS, row.error
    assert any(n.startswith("embedding tables stay float") for n in row.notes), row.notes


def test_static_modes_keep_float_io_and_the_converter_engine_stays(pool, tmp_path):
    from edgekit.runtime import load

    r = convert("builtin:mlp", tmp_path / "q", formats="tflite", quantize="int8,int16x8", calibration="digits",
                pool=pool)
    rows = _rows(r)
    for label in ("tflite:int8", "tflite:int16x8"):
        assert rows[label].status == PASS and rows[label].meta["engine"] == "litert-quantizer", rows[label].error
    pred = load(tmp_path / "q" / "model_int8.tflite")
    assert pred.inputs[0].dtype == "float32" and pred.outputs[0].dtype == "float32"
    old = convert("builtin:mlp", tmp_path / "c", formats="tflite", quantize="int8", calibration="digits",
                  quantize_engine="converter", pool=pool)
    row = _rows(old)["tflite:int8"]
    assert row.status == PASS and row.meta["engine"] == "converter"
    assert any("converter's post-training quantization" in n for n in row.notes)
    with pytest.raises(InputError, match="no int4 quantization"):
        convert("builtin:mlp", tmp_path / "d", formats="tflite", quantize="int4", quantize_engine="converter", pool=pool)


def test_onnx_dynamic_on_a_host_without_vnni_keeps_the_best_variant(pool, tmp_path, monkeypatch):
    # the choice made on a host without VNNI, reproduced here: three variants made by ONNX
    # Runtime, each run by ONNX Runtime against the model's outputs, the best kept
    from edgekit.quantize.onnx_quant import _dynamic

    r = convert(TOKEN_LM, tmp_path / "f", formats="onnx", pool=pool)
    feeds = r.feeds
    monkeypatch.setenv("EDGEKIT_HOST_VNNI", "0")
    notes: list[str] = []
    meta = _dynamic(str(tmp_path / "f" / "model.onnx"), str(tmp_path / "q.onnx"), str(tmp_path),
                    {"feeds": feeds, "reference": r.reference}, notes)
    scores = meta["onnx_variants_snr_db"]
    assert set(scores) == {"QInt8", "QUInt8", "QInt8, reduce_range"}
    assert scores[meta["onnx_weights"]] == max(scores.values())
    assert notes and notes[0].startswith("host without VNNI")
    assert (tmp_path / "q.onnx").is_file()
    monkeypatch.setenv("EDGEKIT_HOST_VNNI", "1")
    assert _dynamic(str(tmp_path / "f" / "model.onnx"), str(tmp_path / "q2.onnx"), str(tmp_path),
                    {"feeds": feeds, "reference": r.reference}, [])["onnx_weights"] == "QInt8"


def test_calibration_with_wrong_names_fails_before_tensorflow(tmp_path):
    import time

    model = tmp_path / "m.keras"
    proc = run_cli(["convert", "builtin:mlp", "--to", "keras", "--out", str(tmp_path / "k"), "-q"])
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "k" / "model.keras").rename(model)
    cal = tmp_path / "cal.npz"
    np.savez(cal, wrong=np.zeros((4, 784), np.float32))
    t0 = time.perf_counter()
    proc = run_cli(["convert", str(model), "--to", "tflite", "--quantize", "int8", "--calibration", str(cal),
                    "--out", str(tmp_path / "o")])
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 2 and "--calibration" in proc.stderr and "wrong" in proc.stderr, proc.stderr
    assert elapsed < 20  # no worker imported TensorFlow (the CLI's own start included)


def test_decoders_are_judged_on_the_next_token_and_encoders_on_cosine(pool, tmp_path):
    """A causal LM's logits: next-token top-1 (tie-aware) and mean KL against Keras; an
    encoder's states and pooled output: SNR and cosine, no top-1 over two rows of features."""
    from tests.fixtures import field_zoo

    zoo = Path(field_zoo.__file__).resolve()
    lm = convert(f"{zoo}:gpt2_causal_lm", tmp_path / "lm", formats="tflite,onnx", quantize="int4",
                 onnx_quantize="int4", kernels="xnnpack", pool=pool)
    assert [o.role for o in lm.spec.outputs] == ["lm"]
    for label in ("tflite:int4", "onnx:int4"):
        row = _rows(lm)[label]
        assert row.status == PASS, (label, row.error)
        (o,) = row.comparison.outputs
        assert o.tolerance.kind == "lm" and o.kl is not None and o.kl <= o.tolerance.max_kl
        assert o.top1_agreement >= o.tolerance.min_top1 and o.top1_strict <= o.top1_agreement
    m = json.loads((tmp_path / "lm" / "manifest.json").read_text())
    assert m["model"]["outputs"][0]["role"] == "lm"
    a = next(a for a in m["artifacts"] if a["label"] == "tflite:int4")
    assert a["comparison"]["outputs"][0]["kl"] is not None
    enc = convert(f"{zoo}:bert", tmp_path / "enc", formats="tflite", quantize="int4", kernels="xnnpack", pool=pool)
    assert {o.name: o.role for o in enc.spec.outputs} == {"sequence_output": "features", "pooled_output": "features"}
    row = _rows(enc)["tflite:int4"]
    assert row.status == PASS, row.error
    for o in row.comparison.outputs:
        assert o.top1_agreement is None and o.cosine >= o.tolerance.min_cosine and o.snr_db >= o.tolerance.min_snr_db


@pytest.mark.parametrize("engine", ["litert-quantizer", "converter"])
def test_int16x8_with_ops_that_have_no_int16_kernel_is_na(engine, pool, tmp_path):
    r = convert(f"{BUILDERS}:no_int16_ops", tmp_path, formats="tflite", quantize="int16x8,dynamic",
                calibration="random", quantize_engine=engine, pool=pool)
    rows = _rows(r)
    row = rows["tflite:int16x8"]
    assert row.status == SKIPPED and row.error.startswith("int16x8: no int16 kernel for ")
    assert "HARD_SWISH" in row.error and "\n" not in row.error
    if engine == "litert-quantizer":  # the quantizer names every op that would stay float
        assert "SQUARED_DIFFERENCE" in row.error and "NEG" in row.error
    assert rows["tflite:dynamic"].status == PASS
    assert r.exit_code == 0  # n/a is not a breach
