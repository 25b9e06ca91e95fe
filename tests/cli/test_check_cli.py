"""edgekit check and report merge as a CI system runs them: exit codes, one-line config
errors, a conversion failure as a JUnit error, the HTML report in a headless browser, and
the pytest plugin in a project's own test run."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_bad_config_exits_2_with_one_line(tmp_path):
    (tmp_path / "edgekit.toml").write_text('[models.a]\nmodel = "builtin:mlp"\nformts = ["onnx"]\n')
    p = run_cli(["check", str(tmp_path / "edgekit.toml")])
    assert p.returncode == 2
    assert p.stderr.strip() == ("edgekit: error: edgekit.toml:3: models.a.formts: unknown key (did you mean formats?)")
    assert not (tmp_path / "edgekit-check").exists()  # nothing written
    p = run_cli(["check"], cwd=tmp_path / "..")
    assert p.returncode == 2 and "no edgekit.toml" in p.stderr
    p = run_cli(["check", str(tmp_path / "edgekit.toml"), "--shard", "3/2"])
    assert p.returncode == 2 and "1 <= K <= N" in p.stderr


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    """A real run in which the ONNX converter crashes (fault injection): exit code 1."""
    d = tmp_path_factory.mktemp("crash")
    (d / "edgekit.toml").write_text(textwrap.dedent("""
        [check]
        out = "out"
        [models.mlp]
        model = "builtin:mlp"
        formats = ["tflite", "onnx"]
        [models.cnn]
        model = "builtin:cnn"
        formats = ["tflite"]
        [models.cnn.budgets]
        max_size = "1 KB"
    """))
    p = run_cli(["check", "-q", "--shard", "1/1"], cwd=d, env={"EDGEKIT_INJECT_CRASH": "export:onnx"})
    return d, p


def test_a_converter_crash_is_exit_1_and_a_junit_error(failing_run):
    import xmlschema
    from xml.etree import ElementTree as ET

    d, p = failing_run
    assert p.returncode == 1, p.stderr[-2000:]
    assert "mlp/onnx@x86-cpu" in p.stdout and "ERROR" in p.stdout and "SIGSEGV" in p.stdout
    xmlschema.XMLSchema(str(ROOT / "tests" / "fixtures" / "junit.xsd")).validate(str(d / "out" / "junit.xml"))
    cases = {tc.get("classname") + "/" + tc.get("name"): tc for tc in ET.parse(d / "out" / "junit.xml").iter("testcase")}
    err = cases["edgekit.mlp/onnx@x86-cpu"].find("error")
    assert err is not None and err.get("type") == "conversion" and "SIGSEGV" in err.get("message")
    assert cases["edgekit.mlp/tflite@x86-cpu"].find("error") is None
    assert cases["edgekit.cnn/tflite@x86-cpu"].find("failure").get("type") == "budget"


def test_report_merge_cli(failing_run, tmp_path):
    d, _ = failing_run
    p = run_cli(["report", "merge", str(d / "out" / "report.json"), "--out", str(tmp_path / "m"), "-q"])
    assert p.returncode == 1  # the shard's conversion failure carries over
    merged = json.loads((tmp_path / "m" / "report.json").read_text())
    assert merged["totals"]["error"] == 1 and (tmp_path / "m" / "junit.xml").is_file()
    p = run_cli(["report", "merge", str(tmp_path / "nope.json")])
    assert p.returncode == 2 and "not an edgekit check report.json" in p.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on this machine (.ci/run installs Debian's chromium)")
def test_html_report_opens_in_a_headless_browser(failing_run, tmp_path):
    d, _ = failing_run
    report = json.loads((d / "out" / "report.json").read_text())
    html = d / "out" / "report.html"
    p = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", html.as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = p.stdout
    assert p.returncode == 0, p.stderr[-2000:]
    html_tag = re.search(r"<html[^>]*>", dom)[0]
    assert 'data-edgekit-ready="1"' in html_tag  # the page's script ran to the end
    assert "data-errors" not in html_tag  # and raised nothing
    assert dom.count("<tr class=") == len(report["cases"])  # the matrix: one row per case
    assert 'data-case="mlp/onnx@x86-cpu"' in dom and "<svg" in dom  # plots inline, offline
    text = html.read_text()
    assert not re.search(r"(src|href)=[\"']?(https?:|//)|url\((https?:|//)", text)  # nothing to fetch: offline


@pytest.mark.slow  # a second pytest run on a scratch project
def test_pytest_plugin_in_a_project(tmp_path):
    (tmp_path / "test_models.py").write_text(textwrap.dedent("""
        import pytest
        from edgekit.testing import assert_converts

        def test_fixture_passes(edgekit_convert):
            result = edgekit_convert("builtin:mlp", formats=["tflite", "onnx"])
            assert {r.status for r in result.rows} == {"pass"}

        def test_failure_message_is_the_matrix(tmp_path):
            with pytest.raises(AssertionError) as exc:
                assert_converts("builtin:cnn", formats="tflite", out_dir=tmp_path, atol=0.0, rtol=0.0)
            assert "tflite" in str(exc.value) and "exit code 3" in str(exc.value)

        def test_a_live_keras_model(edgekit_convert):
            import keras
            inp = keras.Input((4,), name="x")
            model = keras.Model(inp, keras.layers.Dense(2, name="y")(inp))
            result = edgekit_convert(model, formats="onnx", devices="x86-cpu")
            assert [r.label for r in result.rows] == ["onnx"] and result.exit_code == 0

        def test_unknown_device():
            with pytest.raises(ValueError, match="unknown device"):
                assert_converts("builtin:mlp", devices=["tpu-v9"])
    """))
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:]
    assert "4 passed" in p.stdout
