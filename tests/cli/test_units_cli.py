"""The same int8 artifact reads the same in the matrix and in the reports: size string, top-1
agreement under one name (tie-aware, strict beside it), accuracy in percent."""
from __future__ import annotations

import json

from edgekit.units import agreement_text, size_text
from tests.conftest import run_cli


def test_convert_matrix_and_report_agree_on_units(tmp_path):
    md = tmp_path / "summary.md"
    proc = run_cli(["convert", "builtin:mlp", "--to", "tflite", "--quantize", "int8", "--calibration", "digits",
                    "--eval-data", "digits", "--out", str(tmp_path / "o"), "-q", "--json", "-", "--markdown", str(md)])
    assert proc.returncode in (0, 3), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    case = next(c for c in report["cases"] if c["artifact"] == "tflite:int8")
    assert 0 < case["top1_strict"] <= case["top1"] <= 1
    size, agree = size_text(case["size"]), agreement_text(case["top1"], case["top1_strict"])
    row = next(ln for ln in proc.stderr.splitlines() if ln.startswith("model_int8.tflite"))
    assert size in row and agree in row, (row, size, agree)
    md_row = next(ln for ln in md.read_text().splitlines() if ln.startswith("| tflite:int8 |"))
    assert f"| {size} |" in md_row and f"| {agree} |" in md_row, md_row
    # the untrained builtin scores near chance (about 10%): a percentage, not a fraction
    assert case["task_metric"]["metric"] == "accuracy" and 1 < case["task_metric"]["value"] <= 100
    assert f"accuracy {case['task_metric']['value']:.2f}%" in md_row
