"""evaluate and predict on every artifact kind, metrics checked against scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.evaluate import evaluate, metrics, predict
from edgekit.pipeline import convert


@pytest.fixture(scope="module")
def trained_dir(pool, tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluate")
    pool.tf.call("edgekit.models.training:train_digits_mlp", str(d / "mlp.keras"), 8, 0, timeout=600)
    convert(str(d / "mlp.keras"), d / "out", pool=pool, quantize="int8", calibration="digits")
    return d


def test_every_artifact_scores_the_same(trained_dir, pool):
    rows = evaluate(str(trained_dir / "out"), "digits", pool=pool)
    names = {r["artifact"].rsplit("/", 1)[-1]: r for r in rows}
    assert set(names) == {"saved_model", "model.keras", "model.h5", "model.weights.h5", "model.tflite",
                          "model.onnx", "model_int8.tflite"}
    float_acc = [r["accuracy"] for n, r in names.items() if n != "model_int8.tflite"]
    assert min(float_acc) >= 95.0 and max(float_acc) - min(float_acc) <= 0.1
    assert abs(names["model_int8.tflite"]["accuracy"] - names["model.keras"]["accuracy"]) <= 1.0
    single = evaluate(str(trained_dir / "out" / "model.tflite"), "digits", pool=pool)
    assert single[0]["accuracy"] == names["model.tflite"]["accuracy"]


def test_metrics_match_scikit_learn():
    from sklearn.metrics import log_loss, precision_score, recall_score, roc_auc_score

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, size=200)
    m = metrics(probs, y)
    assert m["loss"] == pytest.approx(log_loss(y, probs), rel=1e-6)
    assert m["auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"), rel=1e-6)
    # percentages, as accuracy
    assert m["precision"] == pytest.approx(100 * precision_score(y, probs.argmax(1), average="macro"), rel=1e-6)
    assert m["recall"] == pytest.approx(100 * recall_score(y, probs.argmax(1), average="macro"), rel=1e-6)
    p = rng.random((100, 1))
    t = (rng.random(100) < p[:, 0]).astype(int)
    assert metrics(p, t)["auc"] == pytest.approx(roc_auc_score(t, p[:, 0]), rel=1e-6)
    reg = metrics(np.ones((5, 1)), np.full(5, 2.5))  # non-binary labels: regression
    assert reg == {"mae": 1.5, "mse": 2.25}


def test_predict_writes_outputs_and_classes(trained_dir, pool, tmp_path):
    x = tmp_path / "x.npz"
    np.savez(x, pixels=np.random.default_rng(0).random((6, 784), dtype=np.float32))
    for name in ("model.keras", "model.onnx", "model_int8.tflite"):
        res = predict(str(trained_dir / "out" / name), str(x), pool=pool)
        assert res["probs"].shape == (6, 10) and res["probs_classes"].shape == (6,)
        assert np.array_equal(res["probs_classes"], res["probs"].argmax(axis=1))
