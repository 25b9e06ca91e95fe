"""``manifest.json``: every artifact (format, path, size, sha256, I/O specs, tool versions)
and every comparison of a run. Written atomically."""
from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from typing import TYPE_CHECKING, Any

from edgekit.fsutil import atomic_write_json

if TYPE_CHECKING:
    from edgekit.pipeline import ConvertResult

MANIFEST_VERSION = 1
TOOLS = ("edgekit", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime",
         "ai-edge-litert", "tflite-runtime", "litert-quantizer", "onnx-ir", "numpy", "h5py")


def tool_versions() -> dict[str, str]:
    out = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def manifest_dict(result: "ConvertResult") -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": {**result.source.to_json(), "display": result.source.display},
        "model": result.spec.to_json(),
        "feeds": result.feeds_info,
        "calibration": result.calibration,
        "evaluation": result.eval_info,
        "reference_latency": result.reference_latency,
        "golden_reference": result.golden_reference.to_json() if result.golden_reference is not None else None,
        "tolerance_rule": "pass when max|artifact - reference| <= atol + rtol * max|reference| per output and, "
                          "where a float64 twin exists, max|artifact - truth| <= factor * max|Keras - truth| + "
                          "floor_rel * max|truth| (the twin's criterion alone where Keras misses the bound: "
                          "feeds.truth.ill_conditioned)",
        "tools": tool_versions(),
        "devices": result.devices,
        "platform": {"machine": platform.machine(), "python": platform.python_version(), "system": platform.system()},
        "elapsed_s": result.elapsed_s,
        "exit_code": result.exit_code,
        "artifacts": [
            {**r.to_json(result.out_dir), "inputs": result.spec.to_json()["inputs"], "outputs": result.spec.to_json()["outputs"]}
            for r in result.rows
        ],
    }


def write_manifest(result: "ConvertResult", path: Any = None) -> None:
    atomic_write_json(path or result.manifest_path, manifest_dict(result))
