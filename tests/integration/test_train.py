"""edgekit train: Keras does the modelling; these tests check that each option changed
training as it should."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.train import TrainConfig, config_from, run_training


def _train(tmp_path, pool, **kw):
    cfg = TrainConfig(**{"epochs": 2, "seed": 0, **kw})
    cfg.validate()
    return run_training(cfg, str(tmp_path), pool=pool)


@pytest.fixture(scope="module")
def small_models(pool, tmp_path_factory):
    return pool.tf.call("tests.helpers_tf:save_small_models", str(tmp_path_factory.mktemp("small")), timeout=300)


def test_guide_mlp_reaches_95_and_every_artifact_scores_the_same(pool, tmp_path):
    from edgekit.evaluate import evaluate
    from edgekit.pipeline import convert

    res = _train(tmp_path / "run", pool, epochs=30, early_stopping={"monitor": "val_loss", "patience": 5},
                 reduce_lr={"monitor": "val_loss", "patience": 2, "factor": 0.5})
    assert res["test"]["accuracy"] >= 0.95
    assert (tmp_path / "run" / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert set(hist["history"]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    convert(res["model"], tmp_path / "out", formats="keras,saved_model,tflite,onnx", pool=pool)
    rows = evaluate(str(tmp_path / "out"), "digits", pool=pool)
    accs = [r["accuracy"] for r in rows]
    assert min(accs) >= 95.0 and max(accs) - min(accs) <= 0.1


def test_custom_loop_with_clipping_is_comparable(pool, tmp_path):
    res = _train(tmp_path, pool, epochs=12, loop="custom", clip_norm=1.0)
    assert res["test"]["accuracy"] >= 0.93
    h = res["history"]
    assert h["loss"][-1] < h["loss"][0] and "val_accuracy" in h


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_each_optimizer_trains(optimizer, pool, tmp_path):
    res = _train(tmp_path, pool, optimizer=optimizer, learning_rate=0.01 if optimizer == "sgd" else 1e-3, epochs=3)
    h = res["history"]["loss"]
    assert h[-1] < h[0], (optimizer, h)


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_classification_losses_handle_integer_labels(loss, pool, tmp_path):
    res = _train(tmp_path, pool, loss=loss)
    assert res["history"]["loss"][-1] < res["history"]["loss"][0] and res["test"]["accuracy"] > 0.8


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_regression_losses(loss, pool, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((400, 20, 8), dtype=np.float32)
    np.savez(tmp_path / "seq.npz", x=x, y=x.mean(axis=(1, 2)))
    res = _train(tmp_path / "run", pool, model="lstm", data=str(tmp_path / "seq.npz"), loss=loss, metrics=["mae"],
                 epochs=4, learning_rate=0.01)
    h = res["history"]
    assert h["loss"][-1] < h["loss"][0] and "val_mae" in h


def test_binary_loss_and_multi_input_training(small_models, pool, tmp_path):
    rng = np.random.default_rng(0)
    meta = rng.random((300, 10), dtype=np.float32)
    np.savez(tmp_path / "two.npz", image=rng.random((300, 16, 16, 3), dtype=np.float32), meta=meta,
             y=(meta[:, 0] > 0.5).astype(np.float32))
    res = _train(tmp_path / "run", pool, model=small_models["two_input16.keras"], data=str(tmp_path / "two.npz"),
                 loss="binary_crossentropy", metrics=["accuracy", "auc", "precision", "recall"], epochs=6)
    h = res["history"]
    assert h["loss"][-1] < h["loss"][0]
    assert {"auc", "precision", "recall", "val_auc"} <= set(h)


def test_all_metrics_reported(pool, tmp_path):
    res = _train(tmp_path, pool, metrics=["accuracy", "mae", "auc", "precision", "recall"])
    assert {"accuracy", "mae", "auc", "precision", "recall"} <= set(res["test"])


def test_early_stopping_stops(pool, tmp_path):
    # learning rate 0: val_loss never improves, so patience 1 stops at epoch 2 of 10
    res = _train(tmp_path, pool, learning_rate=0.0, epochs=10,
                 early_stopping={"monitor": "val_loss", "patience": 1, "restore_best_weights": True})
    assert res["epochs_run"] == 2


def test_reduce_lr_lowers_the_rate(pool, tmp_path):
    res = _train(tmp_path, pool, learning_rate=1e-9, epochs=5,
                 reduce_lr={"monitor": "val_loss", "patience": 1, "factor": 0.5, "min_lr": 0.0})
    lr = res["history"]["learning_rate"]
    assert lr[0] == pytest.approx(1e-9) and lr[-1] < lr[0] / 1.9


def test_checkpoint_written(pool, tmp_path):
    res = _train(tmp_path, pool, checkpoint={"monitor": "val_loss", "save_best_only": True})
    assert (tmp_path / "best.keras").stat().st_size > 0 and res["checkpoint"] == str(tmp_path / "best.keras")


def test_stop_at_target(pool, tmp_path):
    res = _train(tmp_path, pool, epochs=20, stop_at={"metric": "val_accuracy", "value": 0.5})
    assert res["epochs_run"] < 20 and res["stopped_by"] == "StopAtTarget"


def test_csv_and_npy_loaders(small_models, pool, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((150, 4))
    y = (x[:, 0] * 3).astype(int).clip(0, 2)
    with open(tmp_path / "t.csv", "w") as fh:
        fh.write("a,b,species,c,d\n")
        for row, label in zip(x, y):
            fh.write(f"{row[0]},{row[1]},{label},{row[2]},{row[3]}\n")
    res = _train(tmp_path / "csv", pool, model=small_models["tabular.keras"], data=str(tmp_path / "t.csv"),
                 label_column="species", epochs=3)
    assert res["data"].startswith("CSV t.csv")
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    res = _train(tmp_path / "npy", pool, model=small_models["tabular.keras"],
                 data=f"{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}", epochs=3)
    assert res["epochs_run"] == 3


def test_shape_and_label_errors(small_models, pool, tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((50, 5), np.float32), y=np.zeros(50))
    with pytest.raises(InputError, match=r"cannot feed the model's input of shape \(4,\)"):
        _train(tmp_path / "a", pool, model=small_models["tabular.keras"], data=str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "labels.npz", x=np.zeros((50, 4), np.float32), y=np.full(50, 7))
    with pytest.raises(InputError, match="labels run 7..7 but the model has 3 output classes"):
        _train(tmp_path / "b", pool, model=small_models["tabular.keras"], data=str(tmp_path / "labels.npz"))
    with pytest.raises(InputError, match="no label column 'target'"):
        (tmp_path / "c.csv").write_text("a,b\n1,2\n")
        _train(tmp_path / "c", pool, data=str(tmp_path / "c.csv"), label_column="target")


def test_recipe_file_and_flag_precedence(tmp_path):
    r = tmp_path / "r.toml"
    r.write_text('optimizer = "sgd"\nlearning_rate = 0.05\nepochs = 7\n[early_stopping]\nmonitor = "val_loss"\npatience = 3\n')
    cfg = config_from(str(r), {"epochs": 4, "optimizer": None})
    assert (cfg.optimizer, cfg.learning_rate, cfg.epochs, cfg.early_stopping["patience"]) == ("sgd", 0.05, 4, 3)
    (tmp_path / "bad.toml").write_text('optimiser = "sgd"\n')
    with pytest.raises(InputError, match="bad.toml:1: optimiser: unknown key \\(did you mean optimizer\\?\\)"):
        config_from(str(tmp_path / "bad.toml"), {})
    with pytest.raises(InputError, match="--optimizer: 'lamb' is not one of adam"):
        config_from(None, {"optimizer": "lamb"})
