"""A format added from outside the package (docs/ARCHITECTURE.md, "Adding a format"): one
module that registers it is enough for --help, the conversion, the check, the matrix and the
manifest to include it."""
import json
import os
import subprocess
import sys
import textwrap

PLUGIN = textwrap.dedent('''
    from edgekit.converters import FormatInfo, register
    from edgekit.converters.base import Exporter


    class CopyExporter(Exporter):
        name = "keras-copy"

        def _write(self, ctx, path, options):
            ctx.model.save(str(path))
            return {"notes": ["written by the keras-copy format module"]}


    register(FormatInfo("keras-copy", "model.copy.keras", "edgekit_dummy_format:CopyExporter", "keras", "exact",
                        "the Keras archive again, from a format module", needs_keras_architecture=True,
                        suffixes=(".copy.keras",)))
''')


def _edgekit(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "EDGEKIT_FORMAT_MODULES": "edgekit_dummy_format"}
    return subprocess.run([sys.executable, "-c", "from edgekit.cli import main; main()", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_a_registered_format_is_listed_converted_checked_and_recorded(tmp_path):
    (tmp_path / "edgekit_dummy_format.py").write_text(PLUGIN)
    helptext = _edgekit(["convert", "--help"], tmp_path)
    assert helptext.returncode == 0 and "keras-copy" in " ".join(helptext.stdout.split()), helptext.stdout
    listed = _edgekit(["formats"], tmp_path).stdout
    assert any(line.startswith("keras-copy") and "model.copy.keras" in line for line in listed.splitlines()), listed
    out = tmp_path / "out"
    proc = _edgekit(["convert", "builtin:mlp", "--to", "keras-copy,tflite", "--out", str(out), "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("model.copy.keras"))
    assert row.split()[-1] == "PASS", row
    manifest = json.loads((out / "manifest.json").read_text())
    art = {a["format"]: a for a in manifest["artifacts"]}["keras-copy"]
    assert art["status"] == "pass" and art["path"] == "model.copy.keras" and (out / "model.copy.keras").is_file()
    assert "written by the keras-copy format module" in art["notes"]
    assert art["comparison"]["outputs"][0]["max_abs"] == 0.0  # the same model, run by Keras


def test_a_broken_format_module_is_one_line_and_the_rest_works(tmp_path):
    (tmp_path / "edgekit_dummy_format.py").write_text("raise RuntimeError('half-written plugin')\n")
    proc = _edgekit(["convert", "--help"], tmp_path)
    assert proc.returncode == 0 and "onnx" in proc.stdout
    assert "format module 'edgekit_dummy_format' could not be loaded (RuntimeError: half-written plugin)" in proc.stderr
