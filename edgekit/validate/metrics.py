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
    # labels per output name (``y_<output>`` or an array named after the output); ``labels``
    # then holds the first of them
    by_output: dict[str, np.ndarray] | None = None

    def label_sets(self, output_names: list[str]) -> dict[str, np.ndarray]:
        """Labels keyed by the output they score. One ``y`` scores a single-output model; for
        several outputs it cannot say which, so labels must be given per output."""
        if self.by_output:
            unknown = [k for k in self.by_output if k not in output_names]
            if unknown:
                raise InputError(f"labels for unknown output(s) {unknown}; the model's outputs are {output_names}")
            return dict(self.by_output)
        if len(output_names) != 1:
            raise InputError(f"the model has outputs {output_names}: give labels per output as y_<output> "
                             "(or an array named after the output), not one 'y'")
        return {output_names[0]: self.labels}


def load_eval_data(source: str, specs: tuple[TensorSpec, ...], seed: int = 0,
                   output_names: tuple[str, ...] | list[str] = ()) -> EvalData:
    """Labelled data: ``digits`` (the held-out split) or an .npz with the inputs by name
    (or ``x`` for single-input models) and labels under ``y``, or per output under
    ``y_<output>`` or the output's own name (``output_names``)."""
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
    inputs_named = {sp.name for sp in specs}
    per = {k[2:]: arrays.pop(k) for k in list(arrays) if k.startswith("y_") and k[2:]}
    per.update({k: arrays.pop(k) for k in list(arrays) if k in output_names and k not in inputs_named})
    key = next((k for k in LABEL_KEYS if k in arrays), None)
    if key is None and not per:
        raise InputError(f"--eval-data {source} has no labels: store them under 'y' (or per output as y_<output>)")
    labels = arrays.pop(key) if key is not None else next(iter(per.values()))
    if "x" in arrays and len(specs) == 1 and specs[0].name not in arrays:
        arrays = {specs[0].name: arrays.pop("x")}
    inputs = bind(arrays, specs, source="--eval-data")
    if len(labels) != len(next(iter(inputs.values()))):
        raise InputError(f"--eval-data: {len(labels)} labels for {len(next(iter(inputs.values())))} samples")
    return EvalData(inputs, labels, f"{len(labels)} labelled samples from {Path(source).name}", per or None)


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


def reference_metrics(outputs: dict[str, np.ndarray], ev: EvalData, output_names: list[str]) -> dict[str, tuple[str, float]]:
    """The float model's task metric for every output that has labels, keyed by output name."""
    return {name: task_metric(outputs[name], y) for name, y in ev.label_sets(list(output_names)).items()}


def _shown(name: str, metric: str, several: bool) -> str:
    return f"{name}/{metric}" if several else metric


def headline(refs: dict[str, tuple[str, float]]) -> tuple[str, float]:
    """The one (metric, value) a single column shows: the first output's, named when there
    are several. The per-output numbers are in the task row's ``outputs``."""
    name, (metric, value) = next(iter(refs.items()))
    return _shown(name, metric, len(refs) > 1), value


def task_row(outputs: dict[str, np.ndarray], ev: EvalData, refs: dict[str, tuple[str, float]]) -> dict[str, Any]:
    """An artifact's task metric and drop per output. The headline (what the accuracy gate
    judges) is the output with the largest accuracy drop, else the first output."""
    labels = ev.label_sets(list(outputs))
    per = {n: metric_row(task_metric(outputs[n], labels[n]), refs[n]) for n in refs}
    acc = [n for n in per if per[n]["metric"] == "accuracy"]
    worst = max(acc, key=lambda n: per[n]["drop"]) if acc else next(iter(per))
    row = {**per[worst], "metric": _shown(worst, per[worst]["metric"], len(per) > 1), "output": worst}
    if len(per) > 1:
        row["outputs"] = per
    return row
