"""Generative decoders: a keras-hub causal LM exported with prefill and decode signatures
(TFLite) and past/present key-values (ONNX), checked token by token against Keras' own
greedy generate, run by ``edgekit generate`` without TensorFlow."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.pipeline import PASS, SKIPPED, convert
from tests.conftest import run_cli
from tests.fixtures import field_zoo

ZOO = Path(field_zoo.__file__).resolve()


def _rows(result):
    return {r.label: r for r in result.rows}


@pytest.fixture(scope="module")
def gpt2_run(pool, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpt2_gen")
    r = convert(f"{ZOO}:gpt2_causal_lm", out, formats="tflite,onnx", quantize="int4", onnx_quantize="int4",
                kernels="xnnpack", pool=pool)
    return r, out


def test_a_causal_lm_gets_generative_decoders_that_generate_as_keras(gpt2_run):
    r, out = gpt2_run
    rows = _rows(r)
    for label in ("tflite", "onnx"):  # the single-pass artifacts are still written
        assert rows[label].status == PASS
    for label in ("tflite:generate", "onnx:generate"):
        row = rows[label]
        assert row.status == PASS, (label, row.error)
        g = row.meta["generation"]
        assert g["matched"] == g["steps"] > 0 and not g["diverged"]
        assert g["prompt_lengths"][-1] > row.meta["generative"]["prefill_length"]  # chunked prefill ran
        assert g["max_logit_diff"] < 1e-4 and g["decode_ms_per_token"] > 0
    lay = rows["tflite:generate"].meta["generative"]
    assert lay["cache_length"] == 16 and lay["layers"] == 2  # max_sequence_length of the zoo's GPT-2
    for label in ("tflite:generate:int4", "onnx:generate:int4"):
        row = rows[label]
        assert row.status == PASS, (label, row.error)
        assert row.size < rows[label.rsplit(":", 1)[0]].size
        (o,) = row.comparison.outputs
        assert o.tolerance.kind == "lm" and o.kl <= o.tolerance.max_kl
    m = json.loads((out / "manifest.json").read_text())
    gen = {a["label"]: a for a in m["artifacts"] if a.get("kind") == "generate"}
    assert set(gen) == {"tflite:generate", "onnx:generate", "tflite:generate:int4", "onnx:generate:int4"}
    assert gen["tflite:generate"]["meta"]["signatures"] == ["prefill", "decode"]
    assert gen["onnx:generate"]["meta"]["inputs"][:3] == ["input_ids", "past_key_values.0.key", "past_key_values.0.value"]
    assert (out / "generate.tflite").is_file() and (out / "generate_int4.onnx").is_file()
    assert r.exit_code == 0


def test_edgekit_generate_runs_without_tensorflow_and_agrees_across_formats(gpt2_run):
    _, out = gpt2_run
    probe = ("import sys, json; from edgekit.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
             "print(json.dumps({'tf': 'tensorflow' in sys.modules}), file=sys.stderr); sys.exit(code)")
    import subprocess
    import sys

    got = {}
    for name in ("generate.tflite", "generate.onnx"):
        p = subprocess.run([sys.executable, "-c", probe, "generate", str(out / name), "--prompt-ids", "5,17,42",
                            "--max-new-tokens", "6", "--json"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stderr.strip().splitlines()[-1]) == {"tf": False}
        res = json.loads(p.stdout)
        assert len(res["generated"]) == 6 and res["prefill_ms"] > 0 and res["decode_ms_per_token"] > 0
        got[name] = res["generated"]
    assert got["generate.tflite"] == got["generate.onnx"]
    import edgekit.runtime

    with edgekit.runtime.load(out / "generate.tflite") as dec:
        assert dec.generate([5, 17, 42], max_new_tokens=6)["generated"] == got["generate.tflite"]
        sampled = dec.generate([5, 17, 42], max_new_tokens=6, temperature=1.0, top_k=5, seed=1)["generated"]
        assert sampled == dec.generate([5, 17, 42], max_new_tokens=6, temperature=1.0, top_k=5, seed=1)["generated"]
        stop = got["generate.tflite"][2]
        assert dec.generate([5, 17, 42], max_new_tokens=6, stop_ids=[stop])["generated"][-1] == stop


@pytest.mark.parametrize("args, message", [
    (["--prompt-ids", "5,6,7", "--max-new-tokens", "20"], "longer than the cache of 16 positions"),
    (["--prompt-ids", "5,1000"], "outside the vocabulary of 1000"),
    (["--prompt-ids", "5,x"], "expected comma-separated token ids"),
])
def test_generate_bad_input_is_one_line_exit_2(gpt2_run, args, message):
    _, out = gpt2_run
    p = run_cli(["generate", str(out / "generate.tflite"), *args])
    assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_generate_on_a_single_pass_artifact_is_one_line_exit_2(gpt2_run):
    _, out = gpt2_run
    for name in ("model.tflite", "model.onnx"):
        p = run_cli(["generate", str(out / name), "--prompt-ids", "5"])
        assert p.returncode == 2 and "is not a generative artifact" in p.stderr, p.stderr


@pytest.mark.parametrize("name", ["llama_causal_lm", pytest.param("gemma_causal_lm", marks=pytest.mark.slow)])
def test_llama_and_gemma_class_decoders_pass_with_default_flags(name, pool, tmp_path):
    r = convert(f"{ZOO}:{name}", tmp_path, formats="tflite,onnx", pool=pool)
    rows = _rows(r)
    for label in ("tflite:generate", "onnx:generate"):
        row = rows[label]
        assert row.status == PASS, (label, row.error)
        assert row.meta["generation"]["matched"] == row.meta["generation"]["steps"]
    assert r.exit_code == 0


def test_a_backbone_exported_as_a_causal_lm(pool, tmp_path):
    r = convert(f"{ZOO}:gpt2", tmp_path, formats="tflite", task="causal-lm", max_cache_length=12, pool=pool)
    row = _rows(r)["tflite:generate"]
    assert row.status == PASS, row.error
    assert row.meta["generative"]["cache_length"] == 12 and row.meta["generative"]["class"] == "GPT2CausalLM"
    plain = convert(f"{ZOO}:gpt2", tmp_path / "plain", formats="tflite", pool=pool)
    assert not [x for x in plain.rows if x.kind]  # a backbone alone is no causal LM


@pytest.mark.parametrize("args, message", [
    (["builtin:mlp", "--to", "tflite", "--task", "causal-lm"], "is no keras-hub backbone with a CausalLM"),
    ([f"{ZOO}:gpt2_causal_lm", "--to", "tflite", "--max-cache-length", "64"], "longer than the model's max_sequence_length 16"),
])
def test_convert_bad_generative_settings_are_one_line_exit_2(tmp_path, args, message):
    p = run_cli(["convert", *args, "-o", str(tmp_path / "o"), "-q"])
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_static_recipes_are_na_for_a_decoder(pool, tmp_path):
    r = convert(f"{ZOO}:gpt2_causal_lm", tmp_path, formats="tflite", quantize="int8", calibration="random",
                kernels="xnnpack", pool=pool)
    row = _rows(r)["tflite:generate:int8"]
    assert row.status == SKIPPED and "weight-only recipes" in row.error


def test_judge_accepts_near_ties_and_fails_a_real_divergence():
    from edgekit.generation import judge

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, (4, 50)).astype(np.float32)
    tokens = ref.argmax(-1)
    case = [{"prompt": [1, 2], "generated": tokens.tolist(), "logits": ref}]
    run = [{"logits": ref + 1e-7, "prefill_ms": 1.0, "decode_ms_per_token": 0.5}]
    ok, _, info = judge(case, run, "float32")
    assert ok and info["matched"] == 4 and not info["diverged"]
    tied = ref.copy()
    second = np.argsort(tied[1])[-2]
    tied[1, second] = tied[1, tokens[1]] - 1e-6  # Keras' own top two within float rounding
    case_t = [{"prompt": [1, 2], "generated": tokens.tolist(), "logits": tied}]
    art = tied.copy()
    art[1, second] = tied[1, tokens[1]] + 1e-6  # the artifact picks the other of the two
    ok, _, info = judge(case_t, [{**run[0], "logits": art}], "float32")
    assert ok and info["near_ties"] == 1 and info["matched"] == 3
    wrong = ref.copy()
    wrong[2, (tokens[2] + 1) % 50] += 10.0
    ok, comp, info = judge(case, [{**run[0], "logits": wrong}], "float32")
    assert not ok and info["diverged"][0]["step"] == 2


def test_compare_checks_a_decoder_written_by_another_tool(pool, gpt2_run, tmp_path):
    """An ONNX decoder in Optimum's layout with its extra int64 inputs (attention_mask,
    position_ids), and the TFLite decoder, against the model they came from; a decoder of
    another model fails, exit 3."""
    import onnx
    from onnx import TensorProto, helper

    from edgekit.compare_files import compare

    r, out = gpt2_run
    model = pool.tf.call("tests.helpers_tf:save_from_builder", str(ZOO), "gpt2_causal_lm", str(tmp_path / "lm.keras"))
    other = tmp_path / "decoder_model_merged.onnx"
    mine = convert(model, tmp_path / "mine", formats="tflite,onnx", pool=pool)
    m = onnx.load(str(tmp_path / "mine" / "generate.onnx"))
    for name in ("attention_mask", "position_ids"):
        m.graph.input.append(helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"]))
    onnx.save(m, str(other))
    res = compare(model, [str(other), str(tmp_path / "mine" / "generate.tflite")], pool=pool)
    assert [x.status for x in res.rows] == [PASS, PASS], [x.error for x in res.rows]
    assert all(x.kind == "generate" and x.meta["generation"]["matched"] == x.meta["generation"]["steps"]
               for x in res.rows)
    assert mine.exit_code == 0
    bad = compare(model, [str(out / "generate.tflite")], pool=pool)  # the fixture's model: other weights
    assert bad.rows[0].status == "mismatch" and bad.exit_code == 3


def _bpe_assets(d: Path) -> Path:
    """keras-hub's byte-level BPE assets (vocabulary.json, merges.txt) of a small trained vocabulary."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog", "hello world, hello devices"] * 20,
                            vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    d.mkdir()
    tok.save_model(str(d))
    (d / "vocab.json").rename(d / "vocabulary.json")
    return d


def test_a_tokenizer_beside_the_decoder_takes_a_text_prompt_without_tensorflow(pool, tmp_path):
    assets = _bpe_assets(tmp_path / "assets")
    out = tmp_path / "out"
    r = convert(f"{ZOO}:gpt2_causal_lm", out, formats="tflite", tokenizer=str(assets), pool=pool)
    row = _rows(r)["tflite:generate"]
    assert row.status == PASS and any("gives keras-hub's ids on 4 sample texts" in n for n in row.notes), row.notes
    assert (out / "tokenizer_vocabulary.json").is_file() and (out / "tokenizer_merges.txt").is_file()
    p = run_cli(["generate", str(out / "generate.tflite"), "--prompt", "hello world", "--max-new-tokens", "4", "--json"])
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    from tokenizers import ByteLevelBPETokenizer

    want = ByteLevelBPETokenizer(str(assets / "vocabulary.json"), str(assets / "merges.txt")).encode("hello world").ids
    assert res["prompt"] == want and len(res["generated"]) == 4 and isinstance(res["text"], str)
    bad = run_cli(["convert", f"{ZOO}:gpt2_causal_lm", "--to", "tflite", "--tokenizer", str(tmp_path), "-o",
                   str(tmp_path / "o2"), "-q"])
    assert bad.returncode == 2 and "no keras-hub tokenizer assets" in bad.stderr


def test_the_tflite_decoder_has_no_cache_round_trips_left(gpt2_run):
    """keras-hub stacks the caches over layers and key/value and slices them apart again:
    the merge takes those PACK -> STRIDED_SLICE copies out (each one copied a whole cache per step)."""
    from edgekit.converters.tflite_signatures import fold_pack_slices
    from edgekit.runtimes.tflite_ops import _enum_names, schema

    _, out = gpt2_run
    s = schema()
    m = s.ModelT.InitFromPackedBuf(bytearray((out / "generate.tflite").read_bytes()), 0)
    names = _enum_names(s.BuiltinOperator)
    assert len(m.subgraphs) == 2
    assert all(fold_pack_slices(m, sg, names) == 0 for sg in m.subgraphs)


def test_a_causal_lm_with_a_cache_layout_edgekit_does_not_know(pool, tmp_path):
    builders = Path(__file__).resolve().parent.parent / "fixtures" / "builders.py"
    r = convert(f"{builders}:odd_cache_lm", tmp_path / "a", formats="tflite", pool=pool)
    rows = _rows(r)
    assert rows["tflite"].status == PASS  # the single-pass file is made all the same
    gen = rows["tflite:generate"]
    assert gen.status == SKIPPED and "does not know this decoder's cache layout" in gen.error
    assert "_build_cache(token_ids, images)" in gen.error and r.exit_code == 0
    p = run_cli(["convert", f"{builders}:odd_cache_lm", "--to", "tflite", "--task", "causal-lm", "-o",
                 str(tmp_path / "b"), "-q"])
    assert p.returncode == 2 and "does not know this decoder's cache layout" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
