"""``edgekit evaluate`` and ``edgekit predict`` on any artifact edgekit can run.

Metrics are computed here, in numpy, the same way for every artifact (Keras, SavedModel,
TFLite float or quantized, ONNX), so their numbers compare side by side.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgekit.converters import FormatInfo, format_of
from edgekit.errors import InputError
from edgekit.models.source import ModelSource
from edgekit.runtimes import RUNTIMES
from edgekit.specs import ModelSpec, TensorSpec
from edgekit.worker import WorkerPool, default_pool


def format_for(path: Path) -> FormatInfo:
    fmt = format_of(path, trust_name=True)
    if fmt is None:
        raise InputError(f"{path} is not an artifact edgekit runs (.keras, .h5, .weights.h5, SavedModel, .tflite, .onnx)")
    return fmt


def runtime_for(path: Path) -> str:
    return format_for(path).runtime


def artifacts_of(target: str) -> list[Path]:
    """One artifact, or every artifact a conversion directory's manifest lists."""
    p = Path(target)
    if not p.exists():
        raise InputError(f"{target} does not exist")
    if p.is_dir() and (p / "manifest.json").is_file():
        m = json.loads((p / "manifest.json").read_text())
        return [p / a["path"] for a in m["artifacts"] if a.get("path")]
    runtime_for(p)
    return [p]


def input_specs(path: Path, pool: WorkerPool) -> tuple[TensorSpec, ...]:
    rt = runtime_for(path)
    if rt in ("litert", "onnxruntime"):
        from edgekit.runtime import load

        pred = load(path)
        return tuple(TensorSpec(t.name, tuple(None if d < 0 else d for d in t.shape), "float32" if t.quantized else t.dtype)
                     for t in pred.inputs)
    if rt == "keras-weights":
        raise InputError("evaluate a weights file through its conversion directory (its manifest names the inputs)")
    return _keras_spec(path, pool).inputs


# The model source kind that loads a file of each TensorFlow-side format (a weights file is
# HDF5: loading it says it holds no architecture).
_SOURCE_KINDS = {"saved_model": "saved_model", "h5": "h5", "weights": "h5"}


def _keras_spec(path: Path, pool: WorkerPool) -> ModelSpec:
    src = ModelSource(_SOURCE_KINDS.get(format_for(path).name, "keras"), str(path.resolve()))
    return ModelSpec.from_json(pool.tf.call("edgekit.tasks:inspect_model", src.to_json(), timeout=600, tag="load"))


def run(path: Path, feeds: Mapping[str, np.ndarray], pool: WorkerPool) -> dict[str, np.ndarray]:
    rt = runtime_for(path)
    worker = pool.tf if RUNTIMES[rt].worker == "tf" else pool.rt
    return worker.call("edgekit.tasks:run_artifact", rt, str(path), dict(feeds), 0, timeout=600, tag=f"run:{path.name}")["outputs"]


def metrics(outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Classification (softmax rows or one sigmoid) or regression metrics. Accuracy, precision
    and recall are percentages (as everywhere in edgekit); AUC is the area, in [0, 1]."""
    out = np.asarray(outputs, dtype=np.float64)
    y = np.asarray(labels)
    n = len(y)
    if out.ndim == 2 and out.shape[1] > 1:
        truth = np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] == out.shape[1] else y.reshape(-1).astype(int)
        probs = np.clip(out, 1e-7, 1.0)
        pred = np.argmax(out, axis=1)
        k = out.shape[1]
        prec = [np.mean(truth[pred == c] == c) for c in range(k) if np.any(pred == c)]
        rec = [np.mean(pred[truth == c] == c) for c in range(k) if np.any(truth == c)]
        aucs = [_auc(out[:, c], truth == c) for c in range(k) if 0 < np.sum(truth == c) < n]
        return {"accuracy": float(np.mean(pred == truth) * 100),
                "loss": float(-np.mean(np.log(probs[np.arange(n), truth]))),
                "auc": float(np.mean(aucs)) if aucs else float("nan"),
                "precision": float(np.mean(prec)) * 100 if prec else 0.0,
                "recall": float(np.mean(rec)) * 100 if rec else 0.0}
    if out.ndim == 2 and out.shape[1] == 1 and set(np.unique(y)).issubset({0, 1}):
        p = np.clip(out[:, 0], 1e-7, 1 - 1e-7)
        t = y.reshape(-1).astype(bool)
        pred = p >= 0.5
        return {"accuracy": float(np.mean(pred == t) * 100),
                "loss": float(-np.mean(t * np.log(p) + (~t) * np.log(1 - p))),
                "auc": _auc(p, t), "precision": float(np.mean(t[pred])) * 100 if pred.any() else 0.0,
                "recall": float(np.mean(pred[t])) * 100 if t.any() else 0.0}
    diff = out.reshape(n, -1) - y.reshape(n, -1)
    return {"mae": float(np.mean(np.abs(diff))), "mse": float(np.mean(diff ** 2))}


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def evaluate(target: str, data: str, pool: WorkerPool | None = None) -> list[dict[str, Any]]:
    from edgekit.validate.metrics import load_eval_data

    pool = pool or default_pool()
    rows = []
    for path in artifacts_of(target):
        specs, out_names = _specs_for(path, target, pool)
        ev = load_eval_data(data, specs, output_names=out_names)
        outs = run(path, ev.inputs, pool)
        labels = ev.label_sets(list(outs))
        row: dict[str, Any] = {"artifact": str(path), "samples": len(ev.labels)}
        for name, y in labels.items():
            # one output: the metric names alone (as before); several: each named OUTPUT/metric
            prefix = "" if len(outs) == 1 else f"{name}/"
            row.update({f"{prefix}{k}": v for k, v in metrics(outs[name], y).items()})
        unscored = [n for n in outs if n not in labels]
        if unscored:
            row["unscored_outputs"] = unscored
        rows.append(row)
    return rows


def _specs_for(path: Path, target: str, pool: WorkerPool) -> tuple[tuple[TensorSpec, ...], list[str]]:
    """Input specs and output names of one artifact (from the manifest of a directory)."""
    mf = Path(target) / "manifest.json"
    if Path(target).is_dir() and mf.is_file():
        spec = ModelSpec.from_json(json.loads(mf.read_text())["model"])
        return spec.inputs, list(spec.output_names)
    if runtime_for(path) in ("litert", "onnxruntime"):
        from edgekit.runtime import load

        return input_specs(path, pool), load(path).output_names
    spec = _keras_spec(path, pool)
    return spec.inputs, list(spec.output_names)


def predict(artifact: str, data: str, pool: WorkerPool | None = None) -> dict[str, np.ndarray]:
    """Raw outputs of ``artifact`` on ``data`` (.npz by input name / .npy), plus NAME_classes
    (argmax) for classifier outputs."""
    from edgekit.feeds import bind, load_arrays

    pool = pool or default_pool()
    path = Path(artifact)
    specs = input_specs(path, pool)
    outs = run(path, bind(load_arrays(data), specs, source="--inputs"), pool)
    res = dict(outs)
    for name, a in outs.items():
        if a.ndim == 2 and a.shape[1] > 1:
            res[f"{name}_classes"] = np.argmax(a, axis=1)
    return res
