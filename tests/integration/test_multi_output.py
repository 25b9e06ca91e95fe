"""A two-output model (softmax head + regression head): labels and losses per output in
``train``, every output scored and named in ``evaluate`` and in the quantization drop columns."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

MODEL = f"{Path(__file__).resolve().parent.parent / 'fixtures' / 'builders.py'}:two_heads"


def _data(n: int = 300) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    cls = (x[:, 0] > 0.5).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    return {"features": x, "cls": cls, "reg": (2 * x[:, 2] + x[:, 3]).astype(np.float32)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("heads")
    data = _data()
    np.savez(d / "by_prefix.npz", features=data["features"], y_cls=data["cls"], y_reg=data["reg"])
    np.savez(d / "by_name.npz", **data)
    np.savez(d / "one_y.npz", features=data["features"], y=data["cls"])
    proc = run_cli(["train", "--model", MODEL, "--data", str(d / "by_prefix.npz"), "--loss",
                    "cls=sparse_categorical_crossentropy", "--loss", "reg=mse", "--metrics", "accuracy,mae",
                    "--epochs", "3", "--out", str(d / "run"), "-q"], timeout=900)
    return d, proc


def test_train_takes_labels_and_losses_per_output_and_names_metrics(trained):
    d, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    test = proc.stdout.split("test: ", 1)[1].splitlines()[0]
    assert "cls_accuracy " in test and test.split("cls_accuracy ")[1].split(",")[0].endswith("%")
    assert "reg_mae " in test and "reg_accuracy" not in test  # no accuracy for the regression head
    hist = json.loads((d / "run" / "history.json").read_text())
    assert hist["config"]["loss"] == {"cls": "sparse_categorical_crossentropy", "reg": "mse"}
    assert {"cls_accuracy", "reg_mae", "val_cls_accuracy", "val_reg_mae"} <= set(hist["history"])


def test_one_y_for_two_outputs_is_one_line(trained, tmp_path):
    d, _ = trained
    proc = run_cli(["train", "--model", MODEL, "--data", str(d / "one_y.npz"), "--loss", "cls=mse", "--loss",
                    "reg=mse", "--epochs", "1", "--out", str(tmp_path / "r")], timeout=900)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "edgekit: error: the model has outputs ['cls', 'reg']: give labels per output as y_<output>" in proc.stderr
    proc = run_cli(["train", "--model", MODEL, "--data", str(d / "by_prefix.npz"), "--loss", "cls=mse",
                    "--epochs", "1", "--out", str(tmp_path / "r")], timeout=900)
    assert proc.returncode == 2 and "no loss for ['reg']" in proc.stderr


def test_evaluate_scores_every_output_by_name(trained, pool):
    from edgekit.evaluate import evaluate, metrics, run

    d, _ = trained
    model = d / "run" / "model.keras"
    for data in ("by_prefix.npz", "by_name.npz"):
        (row,) = evaluate(str(model), str(d / data), pool=pool)
        assert {"cls/accuracy", "cls/loss", "reg/mae", "reg/mse"} <= set(row), row
    outs = run(model, {"features": _data()["features"]}, pool)
    want_reg = metrics(outs["reg"], _data()["reg"])
    assert row["reg/mae"] == pytest.approx(want_reg["mae"]) and row["reg/mse"] == pytest.approx(want_reg["mse"])
    assert row["cls/accuracy"] == pytest.approx(metrics(outs["cls"], _data()["cls"])["accuracy"])
    assert 0 <= row["cls/accuracy"] <= 100
    cli = run_cli(["evaluate", str(model), "--data", str(d / "one_y.npz")])
    assert cli.returncode == 2 and "give labels per output" in cli.stderr


def test_quantization_drop_columns_per_output(trained, tmp_path):
    d, _ = trained
    proc = run_cli(["convert", str(d / "run" / "model.keras"), "--to", "tflite", "--quantize", "int8",
                    "--calibration", str(d / "by_prefix.npz"), "--eval-data", str(d / "by_prefix.npz"),
                    "--out", str(tmp_path / "o"), "-q"], timeout=900)
    assert proc.returncode in (0, 3), proc.stderr[-3000:]
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert set(m["evaluation"]["outputs"]) == {"cls", "reg"}
    int8 = next(a for a in m["artifacts"] if a.get("recipe"))
    per = int8["task_metric"]["outputs"]
    assert per["cls"]["metric"] == "accuracy" and per["reg"]["metric"] == "mae"
    for v in per.values():
        assert v["drop"] == pytest.approx(v["value"] - v["reference"] if v["metric"] == "mae"
                                          else v["reference"] - v["value"])
    row = next(ln for ln in proc.stdout.splitlines() if ln.startswith("model_int8.tflite"))
    assert "cls:accuracy" in row and "reg:mae" in row
