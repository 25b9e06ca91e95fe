"""Judging float artifacts against a float64 twin of the model (numpy only).

The fixed bound ``atol + rtol * max|ref|`` assumes Keras float32 is close to what the model
computes, and it is loose: a bug that moves the output by 1e-4 of its scale (one layer's
weights cast to float16, a BatchNormalization epsilon of 1e-5 instead of 1e-3) passes it.
A float64 copy of the model measures both things: how far Keras float32 itself is from the
exact result, and how far the artifact is. The rule, per output, with ``k = max|Keras - truth|``
and ``e = max|artifact - truth|``:

* truth criterion: ``e <= TRUTH_FACTOR * k + TRUTH_FLOOR_REL * max|truth| + TRUTH_FLOOR_ABS``,
  "no worse than Keras float32 itself", always applied where there is a twin;
* well-conditioned inputs (``TRUTH_FACTOR * k`` within the fixed bound, the usual case by orders
  of magnitude): the fixed bound against Keras must hold too, as before;
* ill-conditioned inputs (Keras float32's own error is a third of the fixed bound or more):
  the truth criterion alone decides, so a correct file is not failed for Keras' own rounding.
  (EfficientNetV2-B0 on 0-255 images: Keras float32 is 0.9 of the bound from the truth, ONNX
  Runtime half as far, yet 1.4 bounds from Keras.)

Constants, from the fault-injection benchmark (benchmarks/faults.py; results in
benchmarks/results/): correct LiteRT/ONNX Runtime/TensorFlow files of 9 architectures were
0.5x to 2.4x Keras' own error from the truth (EfficientNetV2-B0 at 224 on standard-normal
inputs: 0.48x and 1.43x), except where Keras happened to be very close: the worst correct
file needs a floor of 8.4e-7 of the output's scale beyond 3x Keras' error. One layer's
weights cast to float16 moved outputs by 5e-6 to 1e-4 of the scale. TRUTH_FACTOR = 3 and
TRUTH_FLOOR_REL = 3e-6 keep 3.6x margin over the worst correct file and 1.7x under the
subtlest float16 cast; 1e-3 weight noise in an embedding model (2e-6 of the scale) is below
the floor and passes. A bound the user gave (--atol/--rtol) is the user's criterion: the
truth is reported, never applied.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from edgekit.validate.compare import Comparison, OutputComparison

TRUTH_FACTOR = 3.0
TRUTH_FLOOR_REL = 3e-6
TRUTH_FLOOR_ABS = 1e-7


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape:
        return float("inf")
    both = np.isfinite(a64) & np.isfinite(b64)
    return float(np.max(np.abs(a64[both] - b64[both]))) if both.any() else 0.0


def _scale(truth: np.ndarray) -> float:
    t = np.asarray(truth, np.float64)
    fin = np.isfinite(t)
    return float(np.max(np.abs(t[fin]))) if fin.any() else 0.0


def keras_truth_errors(reference: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray]) -> dict[str, float]:
    """max|Keras float32 - float64 truth| per output."""
    return {k: _max_abs(reference[k], truth[k]) for k in reference if k in truth}


def judge_output(o: OutputComparison, reference: np.ndarray, candidate: np.ndarray, truth: np.ndarray) -> OutputComparison:
    """``o`` with its errors against the truth and the rule above applied."""
    if o.tolerance.quality or o.max_abs is None:
        return o  # quantized artifacts are judged on quality; a shape mismatch stays a failure
    keras_err = _max_abs(reference, truth)
    art_err = _max_abs(candidate, truth)
    scale = _scale(truth)
    ill = bool(TRUTH_FACTOR * keras_err > o.tolerance.bound(scale))
    limit = TRUTH_FACTOR * keras_err + TRUTH_FLOOR_REL * scale + TRUTH_FLOOR_ABS
    if o.tolerance.source == "user":
        return dataclasses.replace(o, truth_abs=art_err, keras_truth_abs=keras_err, ill_conditioned=ill)
    within = bool(art_err <= limit)
    if ill:
        passed, judged_by = o.error is None and within, "truth"
    else:
        passed, judged_by = o.passed and within, "bound+truth"
    return dataclasses.replace(o, passed=passed, truth_abs=art_err, keras_truth_abs=keras_err,
                               ill_conditioned=ill, truth_bound=limit, judged_by=judged_by)


def judge(comp: Comparison, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
          truth: Mapping[str, np.ndarray] | None) -> Comparison:
    """``comp`` re-judged against the float64 truth (unchanged when there is none)."""
    if truth is None or comp.error is not None:
        return comp
    outs = tuple(judge_output(o, reference[o.name], candidate[o.name], truth[o.name]) if o.name in truth else o
                 for o in comp.outputs)
    return Comparison(outs, comp.error)


def truth_summary(reference: Mapping[str, np.ndarray], truth_res: Mapping[str, Any] | None,
                  bounds: Mapping[str, Any]) -> dict[str, Any]:
    """What the manifest and the matrix say about the truth: available or why not, its cost,
    Keras float32's own error per output and whether the inputs are ill-conditioned there."""
    if not truth_res:
        return {"available": False, "reason": "turned off by --no-truth", "seconds": None}
    truth = truth_res.get("outputs")
    if truth is None:
        return {"available": False, "reason": truth_res.get("reason"), "seconds": truth_res.get("seconds")}
    errs = keras_truth_errors(reference, truth)
    ill = {}
    for k, e in errs.items():
        tol = bounds.get(k)
        ill[k] = bool(tol is not None and not tol.quality and TRUTH_FACTOR * e > tol.bound(_scale(truth[k])))
    return {"available": True, "reason": None, "seconds": truth_res.get("seconds"), "factor": TRUTH_FACTOR,
            "floor_rel": TRUTH_FLOOR_REL, "keras_float32_error": errs, "ill_conditioned": ill}
