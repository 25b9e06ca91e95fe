"""edgekit check end to end on real conversions: breaches and their exit codes and JUnit
failures, caching, golden outputs and drift, baselines, shards and their merge."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgekit import errors
from edgekit.check.config import load_config
from edgekit.report.write import write_reports
from edgekit.check.runner import CheckRun, merge_reports

XSD = Path(__file__).resolve().parents[1] / "fixtures" / "junit.xsd"

BREACHES = """
[check]
out = "out"
formats = ["tflite", "onnx"]

[models.ok]
model = "builtin:mlp"

[models.big]
model = "builtin:mlp"
formats = ["tflite"]
[models.big.budgets]
max_size = { tflite = "1 KB" }

[models.slow]
model = "builtin:conv1d"
formats = ["onnx"]
[models.slow.budgets]
max_latency_ms = 0.000001

[models.tight]
model = "builtin:cnn"
formats = ["tflite"]
[models.tight.tolerance]
atol = 0.0
rtol = 0.0
"""


def run(cfg_path, pool, **kw):
    cfg = load_config(cfg_path)
    r = CheckRun(cfg, pool=pool, **kw)
    report = r.run()
    paths = write_reports(report, r.out)
    return report, paths


def by_id(report):
    return {c["id"]: c for c in report["cases"]}


@pytest.fixture(scope="module")
def breach_project(tmp_path_factory):
    d = tmp_path_factory.mktemp("breaches")
    (d / "edgekit.toml").write_text(BREACHES)
    return d


def test_breaches_exit_codes_and_junit(breach_project, pool, monkeypatch):
    import xmlschema

    summary = breach_project / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report, paths = run(breach_project / "edgekit.toml", pool)
    cases = by_id(report)
    assert cases["ok/tflite@x86-cpu"]["status"] == "pass" and cases["ok/onnx@x86-cpu"]["status"] == "pass"
    big = cases["big/tflite@x86-cpu"]
    assert big["status"] == "fail" and big["kind"] == "budget" and "> budget 1.0 KB (1000 B)" in big["messages"][0]
    slow = cases["slow/onnx@x86-cpu"]
    assert slow["status"] == "fail" and slow["kind"] == "budget" and "latency" in slow["messages"][0]
    tight = cases["tight/tflite@x86-cpu"]
    assert tight["status"] == "fail" and tight["kind"] == "tolerance" and tight["max_abs"] > 0
    assert report["exit_code"] == errors.EXIT_TOLERANCE
    assert report["totals"] == {"pass": 2, "fail": 3, "error": 0, "skipped": 0, "cases": 5}

    xmlschema.XMLSchema(str(XSD)).validate(str(paths["junit"]))
    from xml.etree import ElementTree as ET

    root = ET.parse(paths["junit"]).getroot()
    assert root.get("tests") == "5" and root.get("failures") == "3"
    fails = {tc.get("classname") + "/" + tc.get("name"): tc.find("failure") for tc in root.iter("testcase")}
    assert fails["edgekit.ok/tflite@x86-cpu"] is None
    f = fails["edgekit.big/tflite@x86-cpu"]
    assert f.get("type") == "budget" and "size=" in f.text and "241" not in f.get("type")
    assert fails["edgekit.tight/tflite@x86-cpu"].get("type") == "tolerance"
    assert "max|d|=" in fails["edgekit.tight/tflite@x86-cpu"].text  # the numbers are in the failure

    md = paths["markdown"].read_text()
    assert "FAILED" in md and "| tflite | x86-cpu | FAIL |" in md
    assert summary.read_text() == md + "\n"  # the job summary got the same table
    stored = json.loads(paths["json"].read_text())
    assert stored["exit_code"] == 3 and stored["reports"]["junit"] == str(paths["junit"])


def test_unchanged_models_are_not_reconverted(breach_project, pool):
    first = json.loads((breach_project / "out" / "report.json").read_text())
    assert not any(m["cached"] for m in first["models"])
    again, _ = run(breach_project / "edgekit.toml", pool)
    assert all(m["cached"] and m["convert_elapsed_s"] == 0.0 for m in again["models"])
    assert sum(m["convert_elapsed_s"] for m in first["models"]) > 1.0  # the first run did convert
    assert {c["id"]: c["status"] for c in again["cases"]} == {c["id"]: c["status"] for c in first["cases"]}
    # a budget is judged afresh on the cached numbers: no reconversion
    cfg = breach_project / "edgekit.toml"
    cfg.write_text(BREACHES.replace('max_size = { tflite = "1 KB" }', 'max_size = { tflite = "10 MB" }'))
    relaxed, _ = run(cfg, pool)
    assert by_id(relaxed)["big/tflite@x86-cpu"]["status"] == "pass"
    assert all(m["cached"] for m in relaxed["models"])
    # a conversion setting is part of the key
    cfg.write_text(BREACHES.replace('model = "builtin:cnn"', 'model = "builtin:cnn"\nbatch_size = 3'))
    changed, _ = run(cfg, pool)
    assert {m["name"]: m["cached"] for m in changed["models"]} == {"ok": True, "big": True, "slow": True, "tight": False}
    nocache, _ = run(cfg, pool, use_cache=False, only=["ok"])
    assert [m["cached"] for m in nocache["models"]] == [False]
    # an artifact altered on disk is caught: that model is reconverted
    onnx = breach_project / "out" / "models" / "slow" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    after, _ = run(cfg, pool, only=["slow"])
    assert after["models"][0]["cached"] is False
    cfg.write_text(BREACHES)


def test_shards_cover_the_whole_and_merge_to_its_verdict(breach_project, pool, tmp_path):
    whole, _ = run(breach_project / "edgekit.toml", pool)  # cached: the whole run, as it stands
    parts = []
    for k in (1, 2, 3):
        rep, paths = run(breach_project / "edgekit.toml", pool, shard=(k, 3), out=tmp_path / f"s{k}")
        parts.append(str(paths["json"]))
    ids = [c["id"] for p in parts for c in json.loads(Path(p).read_text())["cases"]]
    assert sorted(ids) == sorted(c["id"] for c in whole["cases"]) and len(ids) == len(set(ids))
    merged = merge_reports(parts)
    assert merged["exit_code"] == whole["exit_code"] and merged["totals"] == whole["totals"]
    missing = merge_reports(parts[:2])
    assert missing["exit_code"] == errors.EXIT_FAILED and missing["missing_models"]


def test_baseline_regression(breach_project, pool, tmp_path):
    report, _ = run(breach_project / "edgekit.toml", pool)
    for c in report["cases"]:
        if c["id"] == "ok/onnx@x86-cpu":
            c["size"] = int(c["size"] / 1.5)  # the model "grew" 50% since the baseline
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps(report))
    now, _ = run(breach_project / "edgekit.toml", pool, baseline=str(base), only=["ok"])
    cases = by_id(now)
    assert cases["ok/onnx@x86-cpu"]["status"] == "fail" and cases["ok/onnx@x86-cpu"]["kind"] == "regression"
    assert "vs baseline" in cases["ok/onnx@x86-cpu"]["messages"][0]
    assert cases["ok/tflite@x86-cpu"]["status"] == "pass" and now["exit_code"] == errors.EXIT_TOLERANCE


BUILDER = """
import keras

def build():
    x = keras.Input((6,), name="x")
    h = keras.layers.Dense(8, activation="tanh", name="h")(x)
    return keras.Model(x, keras.layers.Dense(3, name="y")(h * {scale}))
"""


def test_golden_outputs_update_compare_and_drift(tmp_path, pool):
    (tmp_path / "net.py").write_text(BUILDER.format(scale=1.0))
    (tmp_path / "edgekit.toml").write_text(textwrap.dedent("""
        [check]
        out = "out"
        [models.net]
        model = "net.py:build"
        formats = ["keras", "tflite", "onnx"]
        quantize = ["dynamic"]
    """))
    cfg = tmp_path / "edgekit.toml"
    upd, _ = run(cfg, pool, update_golden=True)
    assert upd["exit_code"] == 0 and upd["models"][0]["golden"]["updated"]
    g = tmp_path / "golden" / "net"
    meta = json.loads((g / "golden.json").read_text())
    assert meta["golden_version"] == 1 and meta["source"] == "net.py:build" and set(meta["arrays"]) == {"inputs", "outputs"}
    with np.load(g / "outputs.npz", allow_pickle=False) as z:
        assert z["y"].shape == (2, 3)

    same, _ = run(cfg, pool)
    cases = by_id(same)
    assert not same["models"][0]["cached"]  # the update run is never reused: this one compared
    assert cases["net/reference@golden"]["status"] == "pass" and same["exit_code"] == 0
    assert all(c["status"] == "pass" for c in same["cases"])

    # the runtimes were upgraded since the golden set (recorded versions differ): reported, still passing
    meta["tools"]["onnxruntime"] = "0.0.1"
    (g / "golden.json").write_text(json.dumps(meta))
    drift, _ = run(cfg, pool)
    ref = by_id(drift)["net/reference@golden"]
    assert ref["status"] == "pass" and any("onnxruntime 0.0.1 -> " in n for n in ref["notes"])

    # the model changed: its golden comparison fails, and every artifact says why
    (tmp_path / "net.py").write_text(BUILDER.format(scale=1.5))
    changed, paths = run(cfg, pool)
    cases = by_id(changed)
    ref = cases["net/reference@golden"]
    assert ref["status"] == "fail" and "no longer computes its golden outputs" in ref["messages"][0]
    tfl = cases["net/tflite@x86-cpu"]
    assert tfl["status"] == "fail" and tfl["kind"] == "golden" and "live model itself drifted" in tfl["messages"][0]
    assert changed["exit_code"] == errors.EXIT_TOLERANCE
    assert "golden" in paths["junit"].read_text()

    # a damaged golden file is refused, not compared against
    with np.load(g / "outputs.npz") as z:
        y = z["y"] + 1
    np.savez_compressed(g / "outputs.npz", y=y)
    damaged, _ = run(cfg, pool)
    assert damaged["exit_code"] == errors.EXIT_USAGE
    assert "does not match its sha256" in damaged["cases"][0]["messages"][0]
