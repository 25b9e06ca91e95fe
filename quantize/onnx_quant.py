"""ONNX quantization with ONNX Runtime's tools (runs in the runtime worker, no TensorFlow).

Dynamic: weights to int8, activations quantized at run time. Static: QDQ format, int8
weights and activations, ranges from calibration data fed by input name, with MinMax,
Entropy or Percentile calibration.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgekit.errors import ConversionError


def calibration_reader(calibration: Mapping[str, np.ndarray], limit: int | None = None) -> Any:
    """An ONNX Runtime ``CalibrationDataReader`` that feeds the samples of ``calibration`` (by
    input name) one at a time, the first ``limit`` of them where given; a fresh one each call."""
    from onnxruntime.quantization import CalibrationDataReader

    n = int(next(iter(calibration.values())).shape[0])
    n = n if limit is None else min(limit, n)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{k: np.asarray(v[i:i + 1]) for k, v in calibration.items()} for i in range(n)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    return Reader()


def quantize(float_path: str, out_path: str, recipe_json: dict[str, Any],
             calibration: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    from edgekit.fsutil import move_into_place
    from edgekit.quantize.recipes import Approach, Recipe

    recipe = Recipe.from_json(recipe_json)
    t0 = time.perf_counter()
    notes = []
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".edgekit-ortq-", dir=Path(out_path).parent) as tmp:
        src = float_path
        pre = os.path.join(tmp, "pre.onnx")
        try:  # shape inference + graph optimization, as ONNX Runtime recommends before quantizing
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(float_path, pre, skip_symbolic_shape=True)
            src = pre
        except Exception as exc:  # noqa: BLE001 - quantizing without it still works
            notes.append(f"pre-processing skipped: {str(exc).splitlines()[0][:120]}")
        out_tmp = os.path.join(tmp, "q.onnx")
        try:
            if recipe.approach is Approach.ONNX_DYNAMIC:
                quantize_dynamic(src, out_tmp, weight_type=QuantType.QInt8)
            elif recipe.approach is Approach.ONNX_STATIC:
                if not calibration:
                    raise ConversionError("ONNX static quantization needs calibration data")
                method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                          "percentile": CalibrationMethod.Percentile}[recipe.calibration_method or "minmax"]
                quantize_static(src, out_tmp, calibration_reader(calibration), quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                calibrate_method=method)
            else:
                raise ConversionError(f"ONNX has no quantization mode {recipe.mode}")
        except ConversionError:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT's quantizer raises many types
            raise ConversionError(f"ONNX {recipe.mode} quantization failed: {str(exc).splitlines()[0][:300]}") from None
        move_into_place(out_tmp, out_path)
    return {"convert_s": time.perf_counter() - t0, "notes": notes}
