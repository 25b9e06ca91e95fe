"""Task metrics on labelled data, computed the same way for every artifact (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError
from edgekit.specs import TensorSpec

LABEL_KEYS = ("y", "labels", "label", "target")


@dataclass
class EvalData:
    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    description: str


def load_eval_data(source: str, specs: tuple[TensorSpec, ...], seed: int = 0) -> EvalData:
    """Labelled data: ``digits`` (the held-out split) or an .npz with the inputs by name
    (or ``x`` for single-input models) and labels under ``y``."""
    from edgekit.feeds import bind, load_arrays

    if source == "digits":
        from edgekit.models.digits import load_digits

        if len(specs) != 1:
            raise InputError("the built-in digits fit a single-input model")
        size = 8 if specs[0].shape[1] in (64, 8) else 28
        _, _, x_test, y_test = load_digits(size=size, seed=seed)
        x = x_test.reshape((-1, *specs[0].shape[1:]))
        return EvalData({specs[0].name: x}, y_test, f"{len(y_test)} held-out digits")
    arrays = load_arrays(source)
    key = next((k for k in LABEL_KEYS if k in arrays), None)
    if key is None:
        raise InputError(f"--eval-data {source} has no labels: store them under 'y'")
    labels = arrays.pop(key)
    if "x" in arrays and len(specs) == 1 and specs[0].name not in arrays:
        arrays = {specs[0].name: arrays.pop("x")}
    inputs = bind(arrays, specs, source="--eval-data")
    if len(labels) != len(next(iter(inputs.values()))):
        raise InputError(f"--eval-data: {len(labels)} labels for {len(next(iter(inputs.values())))} samples")
    return EvalData(inputs, labels, f"{len(labels)} labelled samples from {Path(source).name}")


def task_metric(outputs: np.ndarray, labels: np.ndarray) -> tuple[str, float]:
    """``("accuracy", percent)`` for classifiers (softmax rows or one sigmoid), else ``("mae", value)``."""
    y = np.asarray(labels)
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] > 1:
        truth = np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] == out.shape[1] else y.reshape(-1)
        return "accuracy", float(np.mean(np.argmax(out, axis=1) == truth) * 100)
    if out.ndim == 2 and out.shape[1] == 1 and set(np.unique(y)).issubset({0, 1}):
        return "accuracy", float(np.mean((out[:, 0] >= 0.5) == (y.reshape(-1) == 1)) * 100)
    return "mae", float(np.mean(np.abs(out.reshape(len(y), -1) - y.reshape(len(y), -1))))


def metric_row(metric: tuple[str, float], reference: tuple[str, float]) -> dict[str, Any]:
    """The artifact's metric and how far it moved from the float model's (points of accuracy)."""
    name, value = metric
    drop = reference[1] - value if name == "accuracy" else value - reference[1]
    return {"metric": name, "value": value, "reference": reference[1], "drop": drop}
