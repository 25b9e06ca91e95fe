"""The merged verdict names its cause: a model no shard covered is not a conversion failure."""
from __future__ import annotations

import json

from edgekit.report.cases import console_table, verdict
from edgekit.report.markdown import markdown
from edgekit.check.runner import REPORT_VERSION, merge_reports


def _shard(tmp_path, cases: list[dict]) -> str:
    report = {"report_version": REPORT_VERSION, "config": "edgekit.toml", "config_fingerprint": "f",
              "all_models": ["classifier", "sensor"], "tools": {}, "shard": [1, 2], "elapsed_s": 1.0,
              "models": [{"name": "classifier"}], "cases": cases}
    path = tmp_path / "shard1.json"
    path.write_text(json.dumps(report))
    return str(path)


def _case(status: str) -> dict:
    return {"id": f"classifier/tflite/{status}", "model": "classifier", "artifact": "model.tflite", "device": "x86-cpu",
            "status": status,
            "messages": []}


def test_single_shard_merge_names_the_uncovered_model(tmp_path):
    merged = merge_reports([_shard(tmp_path, [_case("pass")])])
    assert merged["exit_code"] == 1
    assert verdict(merged) == "NOT CHECKED by any shard: sensor"
    table = console_table(merged)
    assert table.splitlines()[-1] == "verdict: NOT CHECKED by any shard: sensor (exit code 1)"
    assert "a conversion or runtime failed" not in table
    assert "(NOT CHECKED by any shard: sensor, exit code 1)" in markdown(merged)


def test_uncovered_model_and_real_failures_are_both_named(tmp_path):
    merged = merge_reports([_shard(tmp_path, [_case("pass"), _case("fail"), _case("error")])])
    assert verdict(merged) == ("NOT CHECKED by any shard: sensor; a conversion or runtime failed; "
                               "a tolerance, budget, golden or regression check failed")
