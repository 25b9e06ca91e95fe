"""One way to write each quantity, shared by every command and report.

Sizes are decimal (KB = 1000 bytes), as budgets are written (``max_size = "40 KB"``); memory
is binary (GiB), as its limits are.
Accuracy-like metrics are percentages. Top-1 agreement is shown tie-aware (a flip between
near-tied classes is not counted) and, where it differs, strict, each labelled.
"""
from __future__ import annotations

from typing import Any, Mapping

# Metrics that are fractions of samples: shown (and stored by train/evaluate) in percent.
PERCENT_METRICS = ("accuracy", "precision", "recall", "binary_accuracy", "categorical_accuracy",
                   "sparse_categorical_accuracy", "top_k_categorical_accuracy")


def size_text(n: int | float | None) -> str:
    """``11752`` -> ``"11.8 KB"``; the same bytes print the same string everywhere."""
    if n is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"


def memory_text(n: int | float) -> str:
    """``2**30`` -> ``"1.0 GiB"``: memory (what a process may allocate, what a model declares)
    in binary units, as the limits it is checked against are set (cgroups, ``ulimit -v``)."""
    gib = 1024**3
    return f"{n / gib:.1f} GiB" if n >= gib / 10 else f"{n / 1024**2:.1f} MiB"


def is_percent_metric(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    base = base[4:] if base.startswith("val_") else base
    return base in PERCENT_METRICS or base.endswith("_accuracy")


def metrics_in_percent(values: Mapping[str, float]) -> dict[str, float]:
    """Keras' fractions (0.9582) as percentages (95.82) for the metrics that are fractions."""
    return {k: (float(v) * 100 if is_percent_metric(k) else float(v)) for k, v in values.items()}


def metric_text(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}%" if is_percent_metric(name) else f"{value:.4g}"


def agreement_text(tie_aware: float | None, strict: float | None, cosine: float | None = None,
                   kl: float | None = None) -> str:
    """Top-1 agreement (fractions in, percent out): ``"100%"``, or ``"100% (strict 98.4%)"``
    where near-ties flipped, with ``KL 0.012`` for a language model's next token; ``cos 0.9999``
    for outputs that are not classifier rows."""
    if tie_aware is None and strict is None:
        return "-" if cosine is None else f"cos {cosine:.4f}"
    t = tie_aware if tie_aware is not None else strict
    assert t is not None
    text = f"{_pct(t)}"
    if strict is not None and abs(strict - t) > 1e-12:
        text += f" (strict {_pct(strict)})"
    if kl is not None:
        text += f" KL {kl:.2g}"
    return text


def _pct(x: float) -> str:
    v = 100 * x
    return f"{v:.0f}%" if abs(v - round(v)) < 1e-9 else f"{v:.1f}%"


def worst(values: Any) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float))]
    return min(vals) if vals else None
