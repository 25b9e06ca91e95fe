"""One way to write each quantity: sizes, percentages, top-1 agreement."""
from __future__ import annotations

import pytest

from edgekit.check.runner import fmt_size
from edgekit.report.matrix import human_size
from edgekit.units import agreement_text, metric_text, metrics_in_percent, size_text


def test_the_same_bytes_print_the_same_size_everywhere():
    for n, want in [(11_752, "11.8 KB"), (999, "999 B"), (40_000, "40.0 KB"), (2_712_345, "2.7 MB"), (None, "-")]:
        assert size_text(n) == human_size(n) == fmt_size(n) == want


def test_accuracy_like_metrics_are_percent():
    got = metrics_in_percent({"accuracy": 0.9582, "val_accuracy": 0.5, "precision": 0.25, "loss": 0.12, "auc": 0.99})
    assert got == pytest.approx({"accuracy": 95.82, "val_accuracy": 50.0, "precision": 25.0, "loss": 0.12, "auc": 0.99})
    assert metric_text("accuracy", 96.38) == "96.38%" and metric_text("mae", 0.01234) == "0.01234"


def test_agreement_shows_strict_beside_tie_aware_only_where_they_differ():
    assert agreement_text(1.0, 0.984375) == "100% (strict 98.4%)"
    assert agreement_text(0.98, 0.98) == "98%"
    assert agreement_text(None, None, 0.99991) == "cos 0.9999"
    assert agreement_text(None, None) == "-"
