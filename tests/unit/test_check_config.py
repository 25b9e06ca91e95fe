"""edgekit.toml validation (key paths and lines), sharding, and the judging of one case."""
from __future__ import annotations

import dataclasses
import textwrap

import pytest

from edgekit.check.config import ConfigError, load_config, parse_size
from edgekit.check.runner import judge, merge_reports, shard_models
from edgekit.results import CaseStatus


def write(tmp_path, text, name="edgekit.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def error_of(tmp_path, text, name="edgekit.toml"):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text, name))
    return str(exc.value)


def test_a_valid_config_resolves_paths_and_merges_defaults(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"PK")
    (tmp_path / "b.py").write_text("def build(): pass\n")
    cfg = load_config(write(tmp_path, """
        [check]
        out = "build"
        formats = ["tflite", "onnx"]
        [check.budgets]
        max_latency_ms = 5
        [models.a]
        model = "m.keras"
        [models.a.budgets]
        max_size = { default = "1 MB", "tflite" = "40 KiB" }
        [models.b]
        model = "b.py:build"
        quantize = ["int8"]
        calibration = "digits"
        [models.b.tolerance.outputs.y]
        atol = 1e-3
    """))
    a, b = cfg.models
    assert cfg.out == tmp_path / "build"
    assert a.model == str(tmp_path / "m.keras") and a.options.formats == ("tflite", "onnx")
    assert a.budgets.max_size == {"default": 1_000_000, "tflite": 40 * 1024}
    assert a.budgets.max_latency_ms == {"default": 5.0}  # from [check.budgets], merged key by key
    assert b.model == f"{tmp_path / 'b.py'}:build" and b.labels() == ["tflite", "onnx", "tflite:int8"]
    assert b.options.atol == {"y": 1e-3}


@pytest.mark.parametrize("text, expected", [
    ("""
     [models.a]
     model = "builtin:mlp"
     [models.a.budgets]
     max_sise = 10
     """, "edgekit.toml:5: models.a.budgets.max_sise: unknown key (did you mean max_size?)"),
    ("""
     [models.a]
     model = "builtin:mlp"
     batch_size = "two"
     """, "edgekit.toml:4: models.a.batch_size: expected an integer >= 1, got 'two'"),
    ("""
     [models.a]
     formats = ["tflite"]
     """, "edgekit.toml:2: models.a: missing key 'model'"),
    ("""
     [models.a]
     model = "builtin:mlp"
     formats = ["tflite", "coreml"]
     """, "edgekit.toml:4: models.a.formats: unknown format 'coreml'"),
    ("""
     [models.a]
     model = "builtin:mlp"
     quantize = ["int8"]
     """, "edgekit.toml:2: models.a: quantization int8 needs calibration data"),
    ("""
     [models.a]
     model = "builtin:mlp"
     quantize = ["dynamic"]
     [models.a.budgets]
     max_accuracy_drop = 1.0
     """, "edgekit.toml:6: models.a.budgets.max_accuracy_drop: needs labelled data"),
    ("""
     [models.a]
     model = "builtin:mlp"
     formats = ["onnx"]
     [models.a.budgets]
     max_size = { "tflite:int8" = "10 KB" }
     """, "models.a.budgets.max_size.tflite:int8: no artifact 'tflite:int8' in this model; it produces: onnx"),
    ("""
     [check]
     devices = ["x86-cpu", "tpu"]
     [models.a]
     model = "builtin:mlp"
     """, "edgekit.toml:3: check.devices: unknown device 'tpu'"),
    ("""
     [models.a]
     model = "missing.keras"
     """, "edgekit.toml:3: models.a.model: missing.keras does not exist"),
    ("""
     [models.a]
     model = "builtin:mlp"
     [models.a.budgets]
     max_size = "lots"
     """, "models.a.budgets.max_size: expected a size such as 40000"),
    ("""
     [chekc]
     out = "x"
     """, "edgekit.toml:2: chekc: unknown key (did you mean check?)"),
    ("""
     [check]
     out = "x"
     """, "models: no models"),
])
def test_config_errors_name_the_line_and_key_path(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_pyproject_tool_edgekit_table_and_its_key_paths(tmp_path):
    write(tmp_path, """
        [project]
        name = "x"

        [tool.edgekit.models.a]
        model = "builtin:mlp"
        timeout = -1
    """, "pyproject.toml")
    with pytest.raises(ConfigError, match=r"pyproject.toml:7: models.a.timeout: expected a number > 0"):
        load_config(tmp_path)  # a directory: finds the pyproject with [tool.edgekit]
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[models.a\nmodel=1"))


def test_sizes():
    assert parse_size(1234) == 1234
    assert parse_size("40 KB") == 40_000
    assert parse_size("1.5MiB") == int(1.5 * 1024 * 1024)
    with pytest.raises(ValueError):
        parse_size("-3 KB")


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_shards_partition_the_models(n):
    names = [f"m{i:02d}" for i in range(13)]
    shards = [shard_models(names, (k, n)) for k in range(1, n + 1)]
    flat = [m for s in shards for m in s]
    assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
    assert shards == [shard_models(list(reversed(names)), (k, n)) for k in range(1, n + 1)]  # order-free


# what every output comparison of a manifest carries (judge reads them as typed Comparisons)
_TOL = {"atol": 0.0, "rtol": 0.0, "source": "int8", "min_snr_db": 20.0, "min_top1": 0.9}


def _art(**kw):
    base = {"format": "tflite", "label": "tflite:int8", "status": "pass", "size": 50_000, "runtime": "litert",
            "latency": {"median_ms": 2.0}, "recipe": {"mode": "int8"}, "notes": [],
            "task_metric": {"metric": "accuracy", "value": 0.9, "reference": 0.95, "drop": 5.0},
            "comparison": {"passed": True, "outputs": [{"name": "y", "passed": True, "tolerance": _TOL, "max_abs": 0.01, "max_rel": 0.01,
                                                        "snr_db": 25.0, "top1_strict": 0.93, "cosine": 0.99}]}}
    base.update(kw)
    return base


def test_each_budget_kind_is_judged(tmp_path):
    cfg = load_config(write(tmp_path, """
        [models.a]
        model = "builtin:mlp"
        formats = ["tflite"]
        quantize = ["int8"]
        calibration = "digits"
        eval_data = "digits"
        [models.a.budgets]
        max_size = { "tflite:int8" = "40 KB" }
        max_latency_ms = 1.5
        max_accuracy_drop = 2
        min_agreement = 0.95
        min_snr_db = 30
    """))
    case = judge(cfg.models[0], _art(), "x86-cpu", {}, None, cfg)
    assert case["status"] == CaseStatus.FAIL and case["kind"] == "budget"
    text = " | ".join(case["messages"])
    for part in ("size 50.0 KB (50000 B) > budget 40.0 KB", "latency 2.000 ms (median) > budget 1.5 ms",
                 "accuracy drop 5.00 points > budget 2", "agreement with the model 0.9300 < budget 0.95",
                 "SNR 25.0 dB < budget 30 dB"):
        assert part in text
    ok = judge(cfg.models[0], _art(size=30_000, latency={"median_ms": 1.0}, task_metric={"metric": "accuracy", "value": 0.95,
                                   "reference": 0.95, "drop": 0.0},
                                   comparison={"passed": True, "outputs": [{"name": "y", "passed": True, "tolerance": _TOL, "snr_db": "inf",
                                                                            "top1_strict": 1.0, "max_abs": 0.0}]}),
               "x86-cpu", {}, None, cfg)
    assert ok["status"] == CaseStatus.PASS and ok["messages"] == []


def test_baseline_regressions(tmp_path):
    cfg = load_config(write(tmp_path, """
        [check.regression]
        max_size_increase = "10%"
        max_latency_increase = 0.5
        [models.a]
        model = "builtin:mlp"
        formats = ["tflite"]
    """))
    art = _art(label="tflite", recipe=None, task_metric=None)
    base = {"a/tflite@x86-cpu": {"size": 40_000, "latency_ms": 1.0}}
    c = judge(cfg.models[0], art, "x86-cpu", {}, base, cfg)
    assert c["status"] == CaseStatus.FAIL and c["kind"] == "regression"
    assert "size 50000 B vs baseline 40000 B (+25.0%, limit +10%)" in c["messages"][0]
    assert "latency 2.000 ms vs baseline 1.000 ms (+100%, limit +50%)" in c["messages"][1]
    same = judge(cfg.models[0], art, "x86-cpu", {}, {"a/tflite@x86-cpu": {"size": 50_000, "latency_ms": 2.0}}, cfg)
    assert same["status"] == CaseStatus.PASS


def test_merge_refuses_mixed_or_repeated_shards(tmp_path):
    import json

    def rep(name, models, fp="f1"):
        p = tmp_path / name
        p.write_text(json.dumps({"report_version": 1, "config": "c", "config_fingerprint": fp, "all_models": ["a", "b"],
                                 "tools": {}, "models": [{"name": m} for m in models],
                                 "cases": [{"id": f"{m}/x@d", "model": m, "status": "pass"} for m in models]}))
        return str(p)

    whole = merge_reports([rep("1.json", ["a"]), rep("2.json", ["b"])])
    assert whole["exit_code"] == 0 and whole["missing_models"] == []
    partial = merge_reports([rep("1.json", ["a"])])
    assert partial["exit_code"] == 1 and partial["missing_models"] == ["b"]
    from edgekit.errors import InputError

    with pytest.raises(InputError, match="different configurations"):
        merge_reports([rep("1.json", ["a"]), rep("3.json", ["b"], fp="f2")])
    with pytest.raises(InputError, match="the same shard twice"):
        merge_reports([rep("1.json", ["a"]), rep("4.json", ["a"])])


def test_one_options_object_and_one_set_of_rules_for_cli_and_config(tmp_path):
    """The CLI's loose forms and a configuration's lists give the same ConvertOptions, and a
    combination that cannot work is refused by the same rule, worded for each surface."""
    from edgekit.errors import InputError
    from edgekit.options import CLI, CONFIG, ConvertOptions

    loose = ConvertOptions.of(formats="onnx,tflite", quantize="int8, float16", devices="x86-cpu", shapes={"x": [4]})
    assert loose == ConvertOptions.of(formats=["tflite", "onnx"], quantize=["int8", "float16"], devices=["x86-cpu"],
                                      shapes={"x": (4,)})
    assert loose.formats == ("tflite", "onnx") and loose.labels() == ["tflite", "onnx", "tflite:int8", "tflite:float16"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        loose.seed = 3  # type: ignore[misc]
    bad = ConvertOptions.of(quantize="int8")
    assert [m for _, m in bad.problems(CLI)][0].startswith("tflite int8 need(s) calibration data: pass --calibration")
    assert [m for _, m in bad.problems(CONFIG)][0].startswith("quantization int8 needs calibration data: add calibration")
    with pytest.raises(InputError, match="--max-accuracy-drop needs labelled data: pass --eval-data"):
        ConvertOptions.of(quantize="dynamic", max_accuracy_drop=1.0).check()
    case = load_config(write(tmp_path, """
        [models.a]
        model = "builtin:mlp"
        formats = "onnx,tflite"
        quantize = ["int8", "float16"]
        devices = ["x86-cpu"]
        calibration = "digits"
        [models.a.shapes]
        x = [4]
    """)).models[0]
    assert case.options == loose.replace(calibration="digits")  # the same object check passes to convert


def test_a_device_change_invalidates_the_check_cache(monkeypatch):
    """code_digest (part of every cache key) covers edgekit.devices: its code and its profiles."""
    from pathlib import Path

    import edgekit.devices
    from edgekit.check import runner

    dev_root = Path(edgekit.devices.__file__).parent.resolve()
    changed = [dev_root / "executor.py", dev_root / "profiles" / "x86-cpu.toml"]
    monkeypatch.setattr(runner, "_CODE_DIGEST", None)
    before = runner.code_digest()
    real = Path.read_bytes
    for f in changed:
        monkeypatch.setattr(Path, "read_bytes", lambda p, f=f: real(p) + (b"\n# edited" if p.resolve() == f else b""))
        monkeypatch.setattr(runner, "_CODE_DIGEST", None)
        assert runner.code_digest() != before, f"{f.name} is not in the digest"


def test_quantization_recipes_in_a_config(tmp_path):
    (tmp_path / "recipe.toml").write_text('[layers]\n"ffn_.*" = "int4"\n')
    cfg = load_config(write(tmp_path, """
        [models.a]
        model = "builtin:mlp"
        formats = ["tflite"]
        quantize = ["int4:128", "auto"]
        kernels = ["xnnpack"]
        quantize_recipe = "recipe.toml"
        [models.b]
        model = "builtin:mlp"
        quantize_engine = "converter"
        quantize = ["dynamic"]
        [models.b.quantize_recipe]
        default = "int8"
        layers = { "dense_1" = "float" }
    """))
    a, b = cfg.models
    assert a.options.quantize == ("int4:128", "auto") and a.options.kernels == ("xnnpack",)
    assert a.options.quantize_recipe == str(tmp_path / "recipe.toml")
    assert [r.mode for r in a.options.recipes()] == ["int4:128", "auto", "recipe"]
    assert b.options.quantize_engine == "converter" and b.options.quantize_recipe["layers"] == {"dense_1": "float"}
    msg = error_of(tmp_path, """
        [models.a]
        model = "builtin:mlp"
        [models.a.quantize_recipe]
        layers = { "x" = "int2" }
    """)
    assert "quantize_recipe" in msg and "choose from int4, int8, float" in msg
    assert "kernel path 'ref'" in error_of(tmp_path, """
        [models.a]
        model = "builtin:mlp"
        kernels = ["ref"]
    """)


def test_generative_settings_in_a_config(tmp_path):
    (tmp_path / "tok").mkdir()
    cfg = load_config(write(tmp_path, """
        [models.lm]
        model = "builtin:mlp"
        task = "causal-lm"
        max_cache_length = 128
        tokenizer = "tok"
        [models.plain]
        model = "builtin:mlp"
        generative = false
    """))
    lm, plain = cfg.models
    assert lm.options.task == "causal-lm" and lm.options.max_cache_length == 128
    assert lm.options.tokenizer == str(tmp_path / "tok") and plain.options.generative is False
    assert "task" in error_of(tmp_path, """
        [models.a]
        model = "builtin:mlp"
        task = "translation"
    """)
    assert "max_cache_length" in error_of(tmp_path, """
        [models.a]
        model = "builtin:mlp"
        max_cache_length = 1
    """)
