"""``edgekit train --recipe`` with the natural TOML forms, end to end."""
from __future__ import annotations

import json

from tests.conftest import run_cli


def test_natural_recipe_trains_with_callbacks_and_out(tmp_path):
    recipe = tmp_path / "train.toml"
    recipe.write_text('epochs = 2\nearly_stopping = 3\ncheckpoint = true\nmetrics = "accuracy"\n'
                      f'monitor = "val_accuracy"\nout = "{tmp_path / "run"}"\n')
    proc = run_cli(["train", "--recipe", str(recipe), "-q"], timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert hist["config"]["early_stopping"] == {"monitor": "val_accuracy", "restore_best_weights": True, "patience": 3}
    assert (tmp_path / "run" / "best.keras").is_file() and (tmp_path / "run" / "model.keras").is_file()
    acc = proc.stdout.split("test: accuracy ", 1)[1].split("%")[0]
    assert 50 < float(acc) <= 100  # a percentage, as everywhere


def test_bad_recipe_is_one_line_exit_2(tmp_path):
    recipe = tmp_path / "train.toml"
    recipe.write_text('epochs = 2\nearly_stopping = "soon"\n')
    proc = run_cli(["train", "--recipe", str(recipe)])
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("edgekit: error: train.toml:2: early_stopping: expected a whole number >= 0, "
                                   "got 'soon'")
