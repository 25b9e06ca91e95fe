"""Tolerance resolution, as one chain: an explicit value (``--atol``/``--rtol``, per output or
for all), else the device profile's override for the artifact's policy, else the format's
default policy (``edgekit.validate.default_tolerance``). The float64 truth of
``edgekit.validate.truth`` then judges float artifacts beside the bound."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from edgekit import errors
from edgekit.specs import ModelSpec
from edgekit.validate import Tolerance, default_tolerance


def parse_tolerance_overrides(values: tuple[str, ...] | list[str], what: str) -> dict[str | None, float]:
    """``["1e-3", "probs=1e-2"]`` -> ``{None: 1e-3, "probs": 1e-2}`` (None = every output)."""
    out: dict[str | None, float] = {}
    for v in values:
        name, sep, num = v.rpartition("=")
        try:
            x = float(num)
            if x < 0 or not np.isfinite(x):
                raise ValueError
        except ValueError:
            raise errors.InputError(f"--{what} {v!r}: expected a non-negative number or OUTPUT=NUMBER") from None
        out[name if sep else None] = x
    return out


def check_overrides(spec: ModelSpec, atol: Mapping[str | None, float], rtol: Mapping[str | None, float]) -> None:
    """Overrides must name outputs the model has."""
    for m in (atol, rtol):
        bad = [k for k in m if k is not None and k not in spec.output_names]
        if bad:
            raise errors.InputError(f"tolerance given for unknown output {bad}; the model's outputs are {spec.output_names}")


def tolerances_for(policy: str, spec: ModelSpec, atol: Mapping[str | None, float], rtol: Mapping[str | None, float],
                   device: Any = None) -> dict[str, Tolerance]:
    """Per-output tolerances of one artifact, on the host or on ``device`` (a profile).
    ``atol``/``rtol`` overrides apply to float artifacts; quantized ones keep their quality
    criteria (SNR, top-1), which a bound meant for float rounding would make fail by design."""
    base = default_tolerance(policy)
    if device is not None and policy in device.tolerance:
        base = Tolerance(*device.tolerance[policy], f"device:{device.name}")
    if base.quality:  # each output by its kind: LM logits on top-1 and KL, features on SNR and cosine
        return {o.name: default_tolerance(policy, o.role) if o.role else base for o in spec.outputs}
    out = {}
    for o in spec.outputs:  # the kind only says what else to report (top-1 and KL of LM logits)
        a = atol.get(o.name, atol.get(None))
        r = rtol.get(o.name, rtol.get(None))
        if a is None and r is None:
            out[o.name] = replace(base, kind=o.role)
        else:
            out[o.name] = Tolerance(base.atol if a is None else a, base.rtol if r is None else r, "user", kind=o.role)
    return out
