"""Attack 2: configuration files switching safety off, found in parent directories."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.check.config import ConfigError, find_config, load_config
from tests.security.conftest import edgekit, one_line_error

BUILDER = "import keras\ndef build():\n    x = keras.Input((4,), name='x')\n    return keras.Model(x, keras.layers.Dense(2)(x))\n"


def _project(root: Path, body: str, name: str = "edgekit.toml") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(BUILDER)
    (root / name).write_text(body)
    return root / name


def test_unsafe_in_pyproject_needs_the_flag(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEKIT_ALLOW_UNSAFE", raising=False)
    cfg = _project(tmp_path, '[tool.edgekit.models.m]\nmodel = "model.py:build"\nunsafe = true\n', "pyproject.toml")
    with pytest.raises(ConfigError, match=r"pyproject.toml:3: models.m.unsafe: .*--unsafe"):
        load_config(cfg)
    assert load_config(cfg, allow_unsafe=True).models[0].options.unsafe is True
    monkeypatch.setenv("EDGEKIT_ALLOW_UNSAFE", "1")
    assert load_config(cfg).models[0].options.unsafe is True


def test_custom_objects_in_config_needs_the_flag(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEKIT_ALLOW_UNSAFE", raising=False)
    cfg = _project(tmp_path, '[models.m]\nmodel = "model.py:build"\ncustom_objects = "model.py"\n')
    with pytest.raises(ConfigError, match="custom_objects .*--unsafe"):
        load_config(cfg)
    assert load_config(cfg, allow_unsafe=True).models[0].options.custom_objects == str((tmp_path / "model.py").resolve())


def test_cli_check_refuses_unsafe_config_with_one_line(tmp_path):
    _project(tmp_path, '[models.m]\nmodel = "model.py:build"\nunsafe = true\n')
    proc = edgekit(["check", "-q"], cwd=tmp_path, env={"EDGEKIT_ALLOW_UNSAFE": ""})
    line = one_line_error(proc, 2)
    assert "unsafe" in line and "--unsafe" in line
    assert f"edgekit: configuration {tmp_path.resolve() / 'edgekit.toml'}" in proc.stderr  # says which file


def test_search_stops_at_the_repository_root(tmp_path):
    _project(tmp_path, '[models.m]\nmodel = "builtin:mlp"\n')  # above the repository: never read
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    with pytest.raises(ConfigError, match="stops at the repository root"):
        find_config(repo / "sub")
    _project(repo, '[models.m]\nmodel = "builtin:mlp"\n')
    assert find_config(repo / "sub") == repo / "edgekit.toml"


def test_no_search_above_a_directory_outside_any_repository(tmp_path, monkeypatch):
    # like /tmp/edgekit.toml above /tmp/work: outside a repository and the home directory,
    # only the current directory counts
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _project(tmp_path, '[models.m]\nmodel = "model.py:build"\n')
    (tmp_path / "work").mkdir()
    with pytest.raises(ConfigError):
        find_config(tmp_path / "work")


def test_builder_outside_the_config_tree_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "evil.py").write_text("import os\nos.system('touch PWNED')\ndef build():\n    pass\n")
    cfg = _project(tmp_path / "proj", '[models.m]\nmodel = "../elsewhere/evil.py:build"\n')
    with pytest.raises(ConfigError, match="outside .*only from the configuration's directory tree"):
        load_config(cfg)
    # a symlink inside the tree that points outside is resolved and refused too
    (tmp_path / "proj" / "link.py").symlink_to(outside / "evil.py")
    (tmp_path / "proj" / "edgekit.toml").write_text('[models.m]\nmodel = "link.py:build"\n')
    with pytest.raises(ConfigError, match="outside"):
        load_config(cfg)
    assert not (tmp_path / "PWNED").exists()
