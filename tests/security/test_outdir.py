"""Attack 3: --out deleting or overwriting user data; stale artifacts that look current."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgekit.errors import InputError
from edgekit.outdir import JOURNAL, LOCK, OutDir
from edgekit.verify import verify
from tests.security.conftest import edgekit, one_line_error


def _user_dir(d: Path) -> dict[str, bytes]:
    (d / "saved_model").mkdir(parents=True)
    (d / "saved_model" / "thesis.tex").write_text("\\chapter{Four years}")
    (d / "model.json").write_text('{"mine": true}')
    return _snapshot(d)


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_foreign_directory_refused_and_untouched(tmp_path):
    before = _user_dir(tmp_path / "u")
    proc = edgekit(["convert", "builtin:mlp", "--to", "saved_model,weights", "--out", str(tmp_path / "u"), "-q"])
    line = one_line_error(proc, 2)
    assert "not made by edgekit" in line and "model.json" in line and "saved_model" in line and "--force" in line
    assert _snapshot(tmp_path / "u") == before


def test_home_directory_refused(tmp_path):
    home = tmp_path / "home"
    before = _user_dir(home)
    # `--out ~` as the shell passes it: the home directory's path
    proc = edgekit(["convert", "builtin:mlp", "--to", "onnx", "--out", str(home), "-q"], env={"HOME": str(home)})
    one_line_error(proc, 2)
    assert _snapshot(home) == before


def test_input_model_never_written_over(small_keras, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    model = d / "model.keras"
    shutil.copy(small_keras, model)
    original = model.read_bytes()
    for extra in ([], ["--force"]):
        proc = edgekit(["convert", "model.keras", "--to", "keras,onnx", "--out", ".", "-q", *extra], cwd=d)
        line = one_line_error(proc, 2)
        assert "model.keras" in line
    assert model.read_bytes() == original and sorted(p.name for p in d.iterdir()) == ["model.keras"]


def test_force_writes_beside_user_files_and_keeps_them(tmp_path):
    d = tmp_path / "u"
    (d).mkdir()
    (d / "notes.txt").write_text("keep me")
    proc = edgekit(["convert", "builtin:mlp", "--to", "onnx", "--out", str(d), "--force", "-q"])
    assert proc.returncode == 0, proc.stderr
    assert (d / "notes.txt").read_text() == "keep me" and verify(str(d))["ok"]
    # a rerun with another format removes its own old artifact, never the user's file
    proc = edgekit(["convert", "builtin:mlp", "--to", "tflite", "--out", str(d), "-q"])
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in d.iterdir()) == ["manifest.json", "model.tflite", "notes.txt"]


def test_rerun_removes_exactly_the_stale_artifacts(tmp_path):
    out = tmp_path / "o"
    assert edgekit(["convert", "builtin:mlp", "--to", "onnx,weights", "--out", str(out), "-q"]).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.json", "model.onnx", "model.weights.h5"]
    (out / "later.txt").write_text("user's, added after the run")
    assert edgekit(["convert", "builtin:mlp", "--to", "tflite", "--out", str(out), "-q"]).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["later.txt", "manifest.json", "model.tflite"]
    m = json.loads((out / "manifest.json").read_text())
    assert [a["path"] for a in m["artifacts"]] == ["model.tflite"] and verify(str(out))["ok"]
    assert not (out / LOCK).exists()  # no lock file left behind


def test_unlisted_file_with_an_artifact_name_refused(tmp_path):
    out = tmp_path / "o"
    assert edgekit(["convert", "builtin:mlp", "--to", "tflite", "--out", str(out), "-q"]).returncode == 0
    (out / "model.onnx").write_text("the user's own ONNX file")
    line = one_line_error(edgekit(["convert", "builtin:mlp", "--to", "onnx", "--out", str(out), "-q"]), 2)
    assert "model.onnx" in line and "no edgekit manifest lists" in line
    assert (out / "model.onnx").read_text() == "the user's own ONNX file"


def _publish(out: Path, names: list[str], **kw) -> None:
    od = OutDir(out, **kw)
    od.check()
    staging = od.open()
    try:
        for n in names:
            (staging / n).write_text(n)
        manifest = {"manifest_version": 1, "artifacts": [{"path": n, "sha256": "x"} for n in names]}
        (staging / "manifest.json").write_text(json.dumps(manifest))
        od.publish(names, staging / "manifest.json")
    finally:
        od.close()


def test_manifest_cannot_make_edgekit_delete_outside(tmp_path):
    """A previous manifest listing '../x', an absolute path or a path through a symlink
    never makes a rerun delete that path."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f").write_text("precious too")
    out = tmp_path / "o"
    out.mkdir()
    (out / "link").symlink_to(tmp_path / "elsewhere")
    listed = ["../victim.txt", str(victim), "link/f", "a.bin"]
    (out / "manifest.json").write_text(json.dumps({"manifest_version": 1, "artifacts": [{"path": p} for p in listed]}))
    (out / "a.bin").write_text("old")
    _publish(out, ["b.bin"])
    assert victim.read_text() == "precious" and (tmp_path / "elsewhere" / "f").read_text() == "precious too"
    assert not (out / "a.bin").exists() and (out / "b.bin").exists()


def test_interrupted_publish_keeps_the_directory_edgekits(tmp_path):
    """A kill after the old manifest went: the journal keeps the directory owned, and the
    next run removes the files only the journal accounts for."""
    out = tmp_path / "o"
    _publish(out, ["a.bin"])
    (out / JOURNAL).write_text(json.dumps({"paths": ["a.bin", "half.bin"]}))
    (out / "half.bin").write_text("moved in by the killed run")
    (out / "manifest.json").unlink()
    OutDir(out, planned=["a.bin"]).check()  # still edgekit's: no refusal
    _publish(out, ["c.bin"])
    assert sorted(p.name for p in out.iterdir()) == ["c.bin", "manifest.json"]


def test_second_lock_holder_refused_and_lock_removed(tmp_path):
    a = OutDir(tmp_path / "o")
    a.open()
    with pytest.raises(InputError, match="another edgekit run"):
        OutDir(tmp_path / "o").open()
    a.close()
    assert not (tmp_path / "o" / LOCK).exists()


def test_check_output_directory_follows_the_same_rules(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "edgekit.toml").write_text('[check]\nout = "out"\n[models.m]\nmodel = "builtin:mlp"\n'
                                                    'formats = ["onnx"]\n')
    (tmp_path / "proj" / "out").mkdir()
    (tmp_path / "proj" / "out" / "paper.pdf").write_text("%PDF")
    line = one_line_error(edgekit(["check", "-q"], cwd=tmp_path / "proj"), 2)
    assert "not made by edgekit" in line and "paper.pdf" in line
    assert sorted(p.name for p in (tmp_path / "proj" / "out").iterdir()) == ["paper.pdf"]


def test_check_rerun_removes_models_no_longer_configured(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    body = '[check]\nout = "out"\nformats = ["onnx"]\n[models.a]\nmodel = "builtin:mlp"\n'
    (proj / "edgekit.toml").write_text(body + '[models.b]\nmodel = "builtin:mlp"\n')
    assert edgekit(["check", "-q"], cwd=proj).returncode == 0
    assert sorted(p.name for p in (proj / "out" / "models").iterdir()) == ["a", "b"]
    (proj / "out" / "notes.txt").write_text("the user's")
    (proj / "edgekit.toml").write_text(body)
    proc = edgekit(["check", "-q"], cwd=proj)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (proj / "out" / "models").iterdir()) == ["a"]
    assert (proj / "out" / "notes.txt").read_text() == "the user's" and not (proj / "out" / LOCK).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_directory_is_a_usage_error(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        line = one_line_error(edgekit(["convert", "builtin:mlp", "--to", "onnx", "--out", str(d / "o"), "-q"]), 2)
        assert "not writable" in line
    finally:
        d.chmod(0o755)
