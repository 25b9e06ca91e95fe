"""Compare an artifact's outputs with the reference model's, output by output."""
from edgekit.validate.compare import (
    Comparison,
    OutputComparison,
    Tolerance,
    compare,
    compare_output,
    default_tolerance,
)

__all__ = [
    "Comparison",
    "OutputComparison",
    "Tolerance",
    "compare",
    "compare_output",
    "default_tolerance",
]
