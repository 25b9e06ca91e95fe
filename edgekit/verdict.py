"""Run-level checks of a verdict, shared by ``convert`` and ``compare`` (numpy only).

A comparison can only mean something if there was something to compare: check inputs with
rows and finite values, and a model whose own outputs are finite on them. Anything else is
refused (bad inputs, exit 2) or reported as a failure (a non-finite model output, exit 3),
never a PASS.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from edgekit import errors
from edgekit.validate.compare import describe_nonfinite


def check_feeds(feeds: Mapping[str, np.ndarray], allow_nonfinite: bool = False) -> None:
    """Refuse check inputs that would compare nothing (zero rows) or feed NaN/inf by accident."""
    for name, a in feeds.items():
        arr = np.asarray(a)
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise errors.InputError(
                f"input {name!r} has no rows (shape {tuple(arr.shape)}): nothing would be compared; "
                "pass at least one sample")
        if arr.dtype.kind in "fc" and not allow_nonfinite and not np.all(np.isfinite(arr)):
            n_nan = int(np.count_nonzero(np.isnan(arr)))
            n_inf = int(np.count_nonzero(np.isinf(arr)))
            raise errors.InputError(
                f"input {name!r} contains {n_nan} NaN and {n_inf} inf value(s) of {arr.size}: "
                "pass finite inputs, or --allow-nonfinite-inputs if this is deliberate")


def check_reference(reference: Mapping[str, np.ndarray]) -> None:
    """A model whose own output is NaN/inf on the check inputs cannot vouch for any artifact."""
    msgs = [m for name, v in reference.items() if (m := describe_nonfinite(name, v))]
    if msgs:
        raise errors.ToleranceExceeded(
            "; ".join(msgs) + " on these inputs: no artifact can be checked against it "
            "(pass inputs in the model's range with --inputs)")


def compute_truth(call_tf: Callable[..., Any], feeds: Mapping[str, np.ndarray], say: Callable[[str], None]) -> dict[str, Any]:
    """The float64 twin's outputs on ``feeds`` through ``call_tf`` (the TensorFlow worker's
    ``truth`` task), or the reason there are none. A twin that fails is no reason to fail the
    run: the float artifacts are then judged by the fixed bound, and their rows say so."""
    try:
        res = dict(call_tf("truth", feeds, tag="truth"))
    except errors.WriteFailure:
        raise
    except errors.EdgekitError as exc:
        res = {"outputs": None, "reason": f"float64 twin failed: {exc}", "seconds": None}
    if res.get("outputs") is None:
        say(f"float64 truth: none ({res.get('reason')}); float artifacts judged by the fixed bound only")
    else:
        say(f"float64 truth: twin built and run in {res['seconds']:.2f} s")
    return res


def reference_truth(call_tf: Callable[..., Any], feeds: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                    bounds: Mapping[str, Any], enabled: bool, say: Callable[[str], None]
                    ) -> tuple[dict[str, np.ndarray] | None, dict[str, Any], str | None]:
    """After the model's own outputs: refuse non-finite ones, then the float64 truth.

    Returns the truth's outputs (None without a twin), its summary for the manifest and the
    matrix, and the note float rows get when a twin was wanted but none could be built."""
    from edgekit.validate.truth import truth_summary

    check_reference(reference)
    res = compute_truth(call_tf, feeds, say) if enabled else None
    summary = truth_summary(reference, res, bounds)
    truth = (res or {}).get("outputs")
    note = f"{summary['reason']}: judged by the fixed bound only" if truth is None and res is not None else None
    return truth, summary, note
