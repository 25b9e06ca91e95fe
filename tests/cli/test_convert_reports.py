"""``edgekit convert --json/--markdown/--html``: the reports ``check`` writes, for one run."""
from __future__ import annotations

import json
from html.parser import HTMLParser

from tests.conftest import run_cli


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001 - HTMLParser's signature
        self.tags.append(tag)


def test_convert_writes_json_markdown_and_html(tmp_path):
    md, html = tmp_path / "r" / "summary.md", tmp_path / "r" / "report.html"
    proc = run_cli(["convert", "builtin:mlp", "--to", "tflite,onnx", "--out", str(tmp_path / "o"), "-q",
                    "--json", "-", "--markdown", str(md), "--html", str(html)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)  # only the JSON on stdout: the matrix went to stderr
    assert "tflite" in proc.stderr and f"reports: {md}, {html}" in proc.stderr
    assert report["command"] == "convert" and report["report_version"] == 1 and report["exit_code"] == 0
    assert report["totals"] == {"pass": 2, "fail": 0, "error": 0, "skipped": 0, "cases": 2}
    by_artifact = {c["artifact"]: c for c in report["cases"]}
    assert set(by_artifact) == {"tflite", "onnx"}
    for c in by_artifact.values():
        assert c["status"] == "pass" and c["device"] == "x86-cpu" and c["size"] > 1000
        assert 0 <= c["max_abs"] < 1e-4 and c["latency_ms"] > 0
        assert (tmp_path / "o" / c["path"]).is_file()
    text = md.read_text()
    assert text.startswith("## edgekit check: PASSED (passed, exit code 0)")
    assert "| artifact | device | status | size |" in text and "| tflite | x86-cpu |" in text
    parser = _Tags()
    parser.feed(html.read_text())
    assert parser.tags.count("table") >= 1 and "svg" in parser.tags


def test_convert_json_to_a_file(tmp_path):
    out = tmp_path / "result.json"
    proc = run_cli(["convert", "builtin:mlp", "--to", "keras", "--out", str(tmp_path / "o"), "-q", "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [c["artifact"] for c in report["cases"]] == ["keras"] and report["cases"][0]["status"] == "pass"
    assert "keras" in proc.stdout  # the matrix stays on stdout when the JSON goes to a file
