"""Tolerance policy and output statistics.

The pass rule for one output is ``max|candidate - reference| <= atol + rtol * scale``
where ``scale = max|reference|`` over the whole output tensor. Scaling by the tensor's
magnitude (not element by element) matters: a correct float32 conversion of a network
with large activations differs by ~1e-4 on logits of magnitude ~100, including on the
elements that happen to be near zero, so an absolute or element-wise relative threshold
fails it while this rule does not. ``max_rel`` is reported on the same footing:
``max_abs / scale``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

# Defaults per (format family, precision). Float32 artifacts run by TensorFlow itself
# compute the same graph, so they get the tight bound; LiteRT (XNNPACK) and ONNX Runtime
# reorder float arithmetic. Quantized precisions are wider by design.
_DEFAULTS: dict[str, tuple[float, float]] = {
    "exact": (1e-5, 1e-5),  # TF/Keras reloads of the same weights
    "float32": (1e-4, 1e-4),  # LiteRT / ONNX Runtime float32
    "float16": (1e-2, 1e-2),
    "dynamic_int8": (5e-2, 5e-2),
    "int8": (1e-1, 1e-1),
    "int16x8": (5e-2, 5e-2),
}


@dataclass(frozen=True)
class Tolerance:
    """Pass bound ``atol + rtol * max|reference|`` on the max absolute difference."""

    atol: float
    rtol: float
    source: str = "default"

    def __post_init__(self) -> None:
        if not (self.atol >= 0 and self.rtol >= 0):
            raise ValueError(f"tolerances must be >= 0, got atol={self.atol} rtol={self.rtol}")

    def bound(self, scale: float) -> float:
        return self.atol + self.rtol * scale

    def describe(self) -> str:
        return f"|d| <= {self.atol:g} + {self.rtol:g}*max|ref| ({self.source})"


def default_tolerance(policy: str) -> Tolerance:
    """Default tolerance for a policy name (``exact``, ``float32``, ``float16``, ...)."""
    try:
        atol, rtol = _DEFAULTS[policy]
    except KeyError:
        raise ValueError(f"unknown tolerance policy {policy!r}; known: {sorted(_DEFAULTS)}") from None
    return Tolerance(atol, rtol, f"default:{policy}")


@dataclass(frozen=True)
class OutputComparison:
    """Statistics for one named output; truthy when it passes."""

    name: str
    passed: bool
    tolerance: Tolerance
    max_abs: float | None = None
    mean_abs: float | None = None
    max_rel: float | None = None
    scale: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    error: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["tolerance"] = asdict(self.tolerance)
        return d


@dataclass(frozen=True)
class Comparison:
    """All outputs of one artifact against the reference; truthy when every output passes."""

    outputs: tuple[OutputComparison, ...] = field(default_factory=tuple)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.outputs) and all(o.passed for o in self.outputs)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def max_abs(self) -> float | None:
        vals = [o.max_abs for o in self.outputs if o.max_abs is not None]
        return max(vals) if vals else None

    @property
    def max_rel(self) -> float | None:
        vals = [o.max_rel for o in self.outputs if o.max_rel is not None]
        return max(vals) if vals else None

    def failures(self) -> list[str]:
        msgs = [self.error] if self.error else []
        for o in self.outputs:
            if not o.passed:
                if o.error:
                    msgs.append(f"{o.name}: {o.error}")
                else:
                    msgs.append(
                        f"{o.name}: max|d|={o.max_abs:.3g} > bound {o.tolerance.bound(o.scale or 0):.3g}"
                    )
        return msgs

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "error": self.error,
            "outputs": [o.to_json() for o in self.outputs],
        }


def _looks_like_classifier(ref: np.ndarray) -> bool:
    return ref.ndim == 2 and ref.shape[1] > 1


def compare_output(name: str, reference: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> OutputComparison:
    """Compare one output. A shape mismatch or non-finite value is a failed comparison."""
    ref = np.asarray(reference)
    cand = np.asarray(candidate)
    if ref.shape != cand.shape:
        return OutputComparison(name, False, tol, error=f"shape {cand.shape} != reference {ref.shape}")
    ref64 = ref.astype(np.float64)
    cand64 = cand.astype(np.float64)
    if not np.all(np.isfinite(cand64)) and not np.array_equal(np.isfinite(cand64), np.isfinite(ref64)):
        return OutputComparison(name, False, tol, error="non-finite values (nan/inf) where the reference has none")
    finite = np.isfinite(ref64) & np.isfinite(cand64)
    if ref.size == 0:
        return OutputComparison(name, True, tol, 0.0, 0.0, 0.0, 0.0, None, None)
    diff = np.abs(cand64 - ref64)[finite]
    max_abs = float(diff.max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    scale = float(np.abs(ref64[finite]).max()) if finite.any() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    a, b = ref64[finite].ravel(), cand64[finite].ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        cosine = 1.0
    elif na == 0 or nb == 0:
        cosine = 0.0
    else:
        cosine = float(np.dot(a, b) / (na * nb))
    top1 = None
    if _looks_like_classifier(ref):
        top1 = float(np.mean(np.argmax(ref64, axis=1) == np.argmax(cand64, axis=1)))
    passed = max_abs <= tol.bound(scale)
    return OutputComparison(name, passed, tol, max_abs, mean_abs, max_rel, scale, cosine, top1)


def compare(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    tolerances: Mapping[str, Tolerance] | Tolerance,
) -> Comparison:
    """Compare every reference output by name; a missing or extra output fails."""
    missing = [k for k in reference if k not in candidate]
    extra = [k for k in candidate if k not in reference]
    if missing or extra:
        return Comparison(
            error=f"output names differ: missing {missing}, unexpected {extra}",
        )
    results = []
    for name, ref in reference.items():
        tol = tolerances if isinstance(tolerances, Tolerance) else tolerances[name]
        results.append(compare_output(name, ref, candidate[name], tol))
    return Comparison(tuple(results))
