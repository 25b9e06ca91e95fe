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
}
# Quantized artifacts are judged on quality, not a bound on the worst element: the
# signal-to-noise ratio of each output against the float model, and top-1 agreement for
# classifier outputs. Thresholds: what correct conversions of the guide models meet with
# margin on meaningful calibration data (measured; see FIELD-NOTES and the tests).
_QUALITY: dict[str, tuple[float, float]] = {  # policy -> (min SNR dB, min top-1 agreement)
    "float16": (40.0, 0.99),
    "int16x8": (30.0, 0.95),
    "dynamic_int8": (20.0, 0.90),
    "int8": (15.0, 0.90),
    # blockwise int4 weights: what int4 of the guide models and small random-weight
    # transformers meets (18-22 dB measured); a per-layer recipe chosen to a budget must
    # meet the budget of dynamic-range int8
    "int4": (12.0, 0.85),
    "mixed": (20.0, 0.90),
}
# Per kind of output, what else judges it. A language model's logits ("lm": the last axis is
# the vocabulary of a token input) are judged on what the model produces: tie-aware top-1 of
# the next token at every position and the mean KL divergence of the next-token distribution,
# in nats; their SNR is reported, not gated (a shift of all logits changes nothing sampled).
# Embeddings and encoder states ("features") have no classes: SNR and cosine similarity.
_MAX_KL: dict[str, float] = {
    "float16": 1e-3, "int16x8": 0.01, "dynamic_int8": 0.03, "int8": 0.05, "int4": 0.1, "mixed": 0.03,
}
_MIN_COSINE: dict[str, float] = {  # a little under what the SNR floor implies (1/sqrt(1 + 10^(-SNR/10)))
    "float16": 0.9999, "int16x8": 0.999, "dynamic_int8": 0.99, "int8": 0.98, "int4": 0.96, "mixed": 0.99,
}
OUTPUT_KINDS = ("lm", "features")
# A language model's next token is a near-tie when the reference finds the artifact's choice at
# most this much less likely than its own (log-probability gap, nats: 0.1 is a ratio of 1.105);
# sampling cannot tell such tokens apart, and an untrained model's logits are all that close.
LM_TIE_NATS = 0.1


@dataclass(frozen=True)
class Tolerance:
    """Either a bound ``atol + rtol * max|reference|`` on the max absolute difference, or,
    when ``min_snr_db`` is set, quality criteria: SNR >= min_snr_db and, for classifier
    outputs, top-1 agreement >= min_top1."""

    atol: float
    rtol: float
    source: str = "default"
    min_snr_db: float | None = None
    min_top1: float | None = None
    kind: str | None = None  # None (scores: top-1 where 2-D), "lm" or "features" (OUTPUT_KINDS)
    max_kl: float | None = None  # "lm": mean KL(reference || candidate) of the next-token distribution
    min_cosine: float | None = None  # "features"

    def __post_init__(self) -> None:
        if not (self.atol >= 0 and self.rtol >= 0):
            raise ValueError(f"tolerances must be >= 0, got atol={self.atol} rtol={self.rtol}")

    @property
    def quality(self) -> bool:
        return self.min_snr_db is not None

    def bound(self, scale: float) -> float:
        return self.atol + self.rtol * scale

    def describe(self) -> str:
        if self.kind == "lm" and self.max_kl is not None:
            return f"next-token top-1 >= {self.min_top1:.0%}, mean KL <= {self.max_kl:g} nats ({self.source})"
        if self.quality:
            top = f", top-1 >= {self.min_top1:.0%}" if self.min_top1 is not None and self.kind is None else ""
            cos = f", cosine >= {self.min_cosine:g}" if self.min_cosine is not None else ""
            return f"SNR >= {self.min_snr_db:g} dB{top}{cos} ({self.source})"
        return f"|d| <= {self.atol:g} + {self.rtol:g}*max|ref| ({self.source})"

    def short(self) -> str:
        if self.kind == "lm" and self.max_kl is not None:
            return f"top1>={self.min_top1:.0%},KL<={self.max_kl:g}"
        if self.quality:
            top = f",top1>={self.min_top1:.0%}" if self.min_top1 is not None and self.kind is None else ""
            cos = f",cos>={self.min_cosine:g}" if self.min_cosine is not None else ""
            return f"SNR>={self.min_snr_db:g}dB{top}{cos}"
        return f"{self.atol:g}+{self.rtol:g}x"


def default_tolerance(policy: str, kind: str | None = None) -> Tolerance:
    """Default tolerance for a policy name (``exact``, ``float32``, ``float16``, ``int8``, ...)
    and, for quantized policies, the kind of output (``OUTPUT_KINDS``; None: scores)."""
    if kind is not None and kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}; known: {OUTPUT_KINDS}")
    if policy in _QUALITY:
        snr, top1 = _QUALITY[policy]
        if kind == "lm":
            return Tolerance(0.0, 0.0, f"default:{policy}", snr, top1, kind, max_kl=_MAX_KL[policy])
        if kind == "features":
            return Tolerance(0.0, 0.0, f"default:{policy}", snr, None, kind, min_cosine=_MIN_COSINE[policy])
        return Tolerance(0.0, 0.0, f"default:{policy}", snr, top1)
    try:
        atol, rtol = _DEFAULTS[policy]
    except KeyError:
        raise ValueError(f"unknown tolerance policy {policy!r}; known: {sorted(_DEFAULTS) + sorted(_QUALITY)}") from None
    return Tolerance(atol, rtol, f"default:{policy}")


# Bins of the error histogram: 0 exactly, then [1e-12, 1e-11), ..., [1e1, 1e2] (clamped).
HIST_EDGES_LOG10 = tuple(range(-12, 3))


def abs_histogram(diff: np.ndarray) -> tuple[int, ...]:
    zeros = int(np.count_nonzero(diff == 0))
    nz = diff[diff > 0]
    lo, hi = HIST_EDGES_LOG10[0], HIST_EDGES_LOG10[-1]
    logs = np.clip(np.log10(nz), lo, hi - 1e-9) if nz.size else np.empty(0)
    counts, _ = np.histogram(logs, bins=np.asarray(HIST_EDGES_LOG10, dtype=np.float64))
    return (zeros, *(int(c) for c in counts))


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
    snr_db: float | None = None
    error: str | None = None
    top1_strict: float | None = None
    kl: float | None = None  # "lm" outputs: mean KL(reference || candidate) over positions, nats
    # |candidate - reference| per element, counted in the decades of HIST_EDGES_LOG10
    # (first bin: exact zeros; values below 1e-12 go to the second bin, above 1e2 to the last)
    abs_hist: tuple[int, ...] | None = None
    # Against the float64 twin (None when there is none; see edgekit.validate.truth):
    # max|candidate - truth|, max|Keras float32 - truth|, and whether Keras float32 itself
    # is a third of the bound or more there (ill-conditioned inputs): the truth alone decides.
    truth_abs: float | None = None
    keras_truth_abs: float | None = None
    ill_conditioned: bool | None = None
    truth_bound: float | None = None  # what truth_abs may reach: factor x keras_truth_abs + floor
    # "bound" (no truth), "bound+truth" (both applied), "truth" (ill-conditioned: the truth alone)
    judged_by: str = "bound"

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["tolerance"] = asdict(self.tolerance)
        for k, v in d.items():  # strict JSON has no Infinity/NaN: an exact match has SNR "inf"
            if isinstance(v, float) and not np.isfinite(v):
                d[k] = str(v)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "OutputComparison":
        """The inverse of ``to_json`` (stringified infinities become floats again)."""
        kw = {k: (float(v) if isinstance(v, str) and v in ("inf", "-inf", "nan") else v)
              for k, v in d.items() if k in cls.__dataclass_fields__}
        kw["tolerance"] = Tolerance(**d["tolerance"])
        if kw.get("abs_hist") is not None:
            kw["abs_hist"] = tuple(kw["abs_hist"])
        return cls(**kw)


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

    @property
    def min_snr_db(self) -> float | None:
        vals = [o.snr_db for o in self.outputs if o.snr_db is not None]
        return min(vals) if vals else None

    def failures(self) -> list[str]:
        msgs = [self.error] if self.error else []
        for o in self.outputs:
            if not o.passed:
                if o.error:
                    msgs.append(f"{o.name}: {o.error}")
                elif o.tolerance.quality:
                    why = []
                    lm = o.tolerance.kind == "lm" and o.tolerance.max_kl is not None
                    if not lm and o.snr_db is not None and o.snr_db < (o.tolerance.min_snr_db or 0):
                        why.append(f"SNR {o.snr_db:.1f} dB < {o.tolerance.min_snr_db:g}")
                    if o.top1_agreement is not None and o.tolerance.min_top1 is not None and o.top1_agreement < o.tolerance.min_top1:
                        why.append(f"top-1 {o.top1_agreement:.1%} < {o.tolerance.min_top1:.0%}")
                    if lm and o.kl is not None and o.kl > o.tolerance.max_kl:
                        why.append(f"mean KL {o.kl:.3g} > {o.tolerance.max_kl:g} nats")
                    if o.cosine is not None and o.tolerance.min_cosine is not None and o.cosine < o.tolerance.min_cosine:
                        why.append(f"cosine {o.cosine:.4f} < {o.tolerance.min_cosine:g}")
                    msgs.append(f"{o.name}: " + ", ".join(why))
                elif o.truth_bound is not None and (o.truth_abs or 0.0) > o.truth_bound:
                    msgs.append(
                        f"{o.name}: max|d| against the float64 model {o.truth_abs:.3g} > {o.truth_bound:.3g} "
                        f"(Keras float32's own {o.keras_truth_abs:.3g}, times the factor, plus the floor)"
                    )
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

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Comparison":
        return cls(tuple(OutputComparison.from_json(o) for o in d.get("outputs", ())), d.get("error"))


def _looks_like_classifier(ref: np.ndarray) -> bool:
    return ref.ndim == 2 and ref.shape[1] > 1


def _count_nonfinite(a: np.ndarray) -> dict[str, int]:
    return {"NaN": int(np.count_nonzero(np.isnan(a))), "+inf": int(np.count_nonzero(np.isposinf(a))),
            "-inf": int(np.count_nonzero(np.isneginf(a)))}


def describe_nonfinite(name: str, values: np.ndarray) -> str | None:
    """``"the model's own output 'probs' is NaN at 20 of 20 positions"``, or None when all finite."""
    a = np.asarray(values)
    if a.dtype.kind not in "fc" or np.all(np.isfinite(a)):
        return None
    parts = [f"{kind} at {n}" for kind, n in _count_nonfinite(a).items() if n]
    return f"the model's own output {name!r} is {' and '.join(parts)} of {a.size} positions"


def nonfinite_mismatch(ref: np.ndarray, cand: np.ndarray) -> str | None:
    """Why the NaN/+inf/-inf positions of ``cand`` differ from ``ref``'s, or None when they match.

    Non-finite values are part of the answer: NaN against 5.0, or +inf against -inf, is a
    disagreement, not a value to leave out of the statistics.
    """
    problems = []
    for kind, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        r, c = test(ref), test(cand)
        extra, lost = int(np.count_nonzero(c & ~r)), int(np.count_nonzero(r & ~c))
        if extra:
            first = tuple(int(i) for i in np.argwhere(c & ~r)[0])
            problems.append(f"{kind} at {extra} position(s) where the reference has none (first at {first})")
        if lost:
            first = tuple(int(i) for i in np.argwhere(r & ~c)[0])
            problems.append(f"the reference's {kind} at {lost} position(s) not reproduced (first at {first})")
    return "non-finite values differ: " + "; ".join(problems) if problems else None


def compare_output(name: str, reference: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> OutputComparison:
    """Compare one output. A shape mismatch fails; so do NaN/+inf/-inf positions that are
    not exactly the reference's (same positions, same sign). Statistics cover the positions
    finite in both; a non-finite mismatch fails whatever they say."""
    ref = np.asarray(reference)
    cand = np.asarray(candidate)
    if ref.shape != cand.shape:
        return OutputComparison(name, False, tol, error=f"shape {cand.shape} != reference {ref.shape}")
    ref64 = ref.astype(np.float64)
    cand64 = cand.astype(np.float64)
    if ref.size == 0:
        return OutputComparison(name, True, tol, 0.0, 0.0, 0.0, 0.0, None, None, None)
    mismatch = nonfinite_mismatch(ref64, cand64)
    finite = np.isfinite(ref64) & np.isfinite(cand64)
    diff = np.abs(cand64[finite] - ref64[finite])
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
    top1 = top1_strict = kl = None
    if tol.kind == "lm" and ref.ndim >= 2 and ref.shape[-1] > 1:
        r2, c2 = ref64.reshape(-1, ref.shape[-1]), cand64.reshape(-1, ref.shape[-1])
        rows = np.isfinite(r2).all(axis=1) & np.isfinite(c2).all(axis=1)
        if rows.any():
            top1_strict, top1 = top1_agreement(as_logits(r2[rows]), as_logits(c2[rows]), min_tie=LM_TIE_NATS)
            kl = mean_kl(r2[rows], c2[rows])
    elif tol.kind is None and _looks_like_classifier(ref) and finite.all(axis=1).any():
        rows = finite.all(axis=1)  # argmax over a row with a NaN means nothing
        top1_strict, top1 = top1_agreement(ref64[rows], cand64[rows])
    noise = float(np.sum((b - a) ** 2))
    signal = float(np.sum(a ** 2))
    snr = float("inf") if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else float("-inf"))
    snr = float(snr)
    if tol.quality and tol.kind == "lm" and tol.max_kl is not None and kl is not None:
        passed = bool((tol.min_top1 is None or top1 >= tol.min_top1) and kl <= tol.max_kl)
    elif tol.quality:  # plain bools and floats: the comparison goes into JSON as it is
        passed = bool(snr >= tol.min_snr_db and (top1 is None or tol.min_top1 is None or top1 >= tol.min_top1)
                      and (tol.min_cosine is None or cosine >= tol.min_cosine))
    else:
        passed = bool(max_abs <= tol.bound(scale))
    return OutputComparison(name, passed and mismatch is None, tol, max_abs, mean_abs, max_rel, scale, cosine, top1,
                            snr, error=mismatch, top1_strict=top1_strict, kl=kl, abs_hist=abs_histogram(diff))


def as_logits(x: np.ndarray) -> np.ndarray:
    """Rows of scores as logits: rows that are already a distribution (non-negative, summing to
    1: a model ending in softmax) are taken as probabilities and logged."""
    if np.all(x >= 0) and np.allclose(x.sum(axis=1), 1.0, atol=1e-3):
        return np.log(np.maximum(x, 1e-30))
    return x


def log_softmax(x: np.ndarray) -> np.ndarray:
    z = as_logits(x)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def mean_kl(ref: np.ndarray, cand: np.ndarray) -> float:
    """Mean over rows of KL(softmax(ref) || softmax(cand)), in nats (rows of logits or of
    probabilities)."""
    lp, lq = log_softmax(ref), log_softmax(cand)
    return max(0.0, float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1))))  # >= 0 (rounding aside)


def top1_agreement(ref: np.ndarray, cand: np.ndarray, min_tie: float = 0.0) -> tuple[float, float]:
    """(strict, tie-aware) top-1 agreement of classifier rows.

    Strict: the same argmax. Tie-aware: the artifact's class scores, in the reference, within
    ``min(3 x RMS error, 5% of max|ref|)`` of the reference's best class. An untrained or
    uncertain model has near-ties that one quantization step flips; such a flip is noise, not
    disagreement. The cap keeps a grossly wrong artifact from calling everything a tie.
    ``min_tie`` widens the window to at least that gap (for a language model's next token, in
    log-probabilities: ``LM_TIE_NATS``).
    """
    chosen = np.argmax(cand, axis=1)
    strict = float(np.mean(np.argmax(ref, axis=1) == chosen))
    rms = float(np.sqrt(np.mean((cand - ref) ** 2)))
    tie = max(min_tie, min(3 * rms, 0.05 * float(np.abs(ref).max())))
    gap = ref.max(axis=1) - ref[np.arange(len(ref)), chosen]
    return strict, float(np.mean(gap <= tie))


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
