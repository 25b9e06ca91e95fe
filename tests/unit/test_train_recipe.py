"""``train --recipe``: the flags' names and value forms, one-line errors with file and line,
and the README's full recipe loads as documented."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgekit.errors import InputError
from edgekit.train_recipe import build

README = Path(__file__).resolve().parents[2] / "README.md"


def _recipe(tmp_path: Path, text: str) -> str:
    p = tmp_path / "train.toml"
    p.write_text(text)
    return str(p)


def test_readme_recipe_loads_with_every_key(tmp_path):
    block = re.search(r"```toml\n(# train\.toml\n.*?)```", README.read_text(), re.S)
    assert block, "the README's full recipe"
    cfg, out = build(_recipe(tmp_path, block[1]), {})
    assert out == "run/"
    assert (cfg.model, cfg.data, cfg.optimizer, cfg.loss) == ("mlp", "digits", "adamw", "sparse_categorical_crossentropy")
    assert cfg.metrics == ["accuracy", "precision"] and (cfg.epochs, cfg.batch_size, cfg.clip_norm) == (20, 64, 1.0)
    assert cfg.early_stopping == {"monitor": "val_loss", "restore_best_weights": True, "patience": 3}
    assert cfg.reduce_lr == {"monitor": "val_loss", "factor": 0.2, "min_lr": 1e-6, "patience": 2}
    assert cfg.checkpoint == {"monitor": "val_loss", "save_best_only": True}
    assert cfg.stop_at == {"metric": "val_accuracy", "value": 0.99}


def test_natural_toml_forms_and_flags_win(tmp_path):
    r = _recipe(tmp_path, 'early-stopping = 3\ncheckpoint = true\nmetrics = "accuracy"\nmonitor = "val_accuracy"\n'
                          'out = "runs/a"\nreduce_lr = 4\nlr_factor = 0.25\n')
    cfg, out = build(r, {})
    assert cfg.metrics == ["accuracy"] and out == "runs/a"
    assert cfg.early_stopping == {"monitor": "val_accuracy", "restore_best_weights": True, "patience": 3}
    assert cfg.reduce_lr == {"monitor": "val_accuracy", "factor": 0.25, "min_lr": 1e-6, "patience": 4}
    assert cfg.checkpoint == {"monitor": "val_accuracy", "save_best_only": True}
    cfg, out = build(r, {"early_stopping": 7, "metrics": "accuracy,mae", "out": "elsewhere", "epochs": None})
    assert cfg.early_stopping["patience"] == 7 and cfg.metrics == ["accuracy", "mae"] and out == "elsewhere"
    cfg, _ = build(_recipe(tmp_path, "checkpoint = false\n"), {})
    assert cfg.checkpoint is None


@pytest.mark.parametrize("text, message", [
    ('epochs = 5\nearly_stopping = "soon"\n', "train.toml:2: early_stopping: expected a whole number >= 0, got 'soon'"),
    ('metrics = "accuracy,f1"\n', "train.toml:1: metrics: unknown metric 'f1'; choose from accuracy, mae, auc"),
    ("checkpoint = 3\n", "train.toml:1: checkpoint: expected true or false, got 3"),
    ('\n[early_stopping]\npatience = 2\nmonitr = "val_loss"\n', "train.toml:4: early_stopping.monitr: unknown key"),
    ("lerning_rate = 0.1\n", "train.toml:1: lerning_rate: unknown key (did you mean learning_rate?)"),
    ('stop_at = "val_accuracy"\n', "train.toml:1: stop_at: expected METRIC=VALUE"),
    ("epochs = 0\n", "train.toml:1: epochs: expected a whole number >= 1, got 0"),
    ('optimizer = "lamb"\n', "train.toml:1: optimizer: 'lamb' is not one of adam, adamw, sgd, rmsprop"),
    ("epochs = [\n", "recipe train.toml: "),
])
def test_each_mistake_is_one_line_naming_key_and_line(tmp_path, text, message):
    with pytest.raises(InputError) as exc:
        build(_recipe(tmp_path, text), {})
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(message), msg


def test_flag_mistakes_name_the_flag():
    with pytest.raises(InputError, match="^--stop-at: expected METRIC=VALUE"):
        build(None, {"stop_at": "val_accuracy"})
    with pytest.raises(InputError, match="^--metrics: unknown metric 'f1'"):
        build(None, {"metrics": "f1"})


def test_loss_per_output_in_recipe_and_flags(tmp_path):
    cfg, _ = build(_recipe(tmp_path, '[loss]\ncls = "sparse_categorical_crossentropy"\nreg = "mse"\n'), {})
    assert cfg.loss == {"cls": "sparse_categorical_crossentropy", "reg": "mse"}
    cfg, _ = build(None, {"loss": ["cls=binary_crossentropy", "reg=huber"]})
    assert cfg.loss == {"cls": "binary_crossentropy", "reg": "huber"}
    with pytest.raises(InputError, match="^train.toml:2: loss.cls: 'rmse' is not one of"):
        build(_recipe(tmp_path, '[loss]\ncls = "rmse"\n'), {})
