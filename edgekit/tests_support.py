"""Small probes used by edgekit's own tests inside worker processes."""
from __future__ import annotations

import sys


def imported(module: str) -> bool:
    """Whether ``module`` has been imported in this process."""
    return module in sys.modules
