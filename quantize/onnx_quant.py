"""ONNX quantization with ONNX Runtime's tools (runs in the runtime worker, no TensorFlow).

Dynamic: weights to int8, activations quantized at run time. Static: QDQ format, int8
weights and activations, ranges from calibration data fed by input name, with MinMax,
Entropy or Percentile calibration. int4: ``MatMulNBits`` (and ``GatherBlockQuantized`` for
embedding tables), blockwise symmetric int4 weights (round to nearest), block 32 by default.

On an x86 host without VNNI, ONNX Runtime's u8s8 kernels can saturate (FIELD-NOTES: 15-25 dB
lost on a small decoder). There, dynamic quantization is made with the default (signed int8
weights), with unsigned int8 weights and with ``reduce_range``; each is measured on the check
inputs against the model, and the best is kept, which the row says.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgekit.errors import ConversionError, InputError, NotApplicable


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


def host_has_vnni() -> bool | None:
    """Whether this x86 CPU has VNNI (AVX-512 VNNI or AVX-VNNI); None off x86 or unknown.
    ``EDGEKIT_HOST_VNNI=0|1`` states it (to reproduce another host's choice)."""
    import platform

    stated = os.environ.get("EDGEKIT_HOST_VNNI")
    if stated in ("0", "1"):
        return stated == "1"
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return None
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_vnni", "avx_vnni", "avx_vnni_int8"})
    except OSError:
        return None
    return None


def _measure(path: str, context: Mapping[str, Any]) -> float:
    """The worst output's SNR (dB) of the file against the model on the check inputs."""
    from edgekit.runtimes.onnxrt import OnnxRuntimeRunner
    from edgekit.validate import compare, default_tolerance

    with OnnxRuntimeRunner(path) as r:
        snr = compare(context["reference"], r.infer(context["feeds"]), default_tolerance("dynamic_int8")).min_snr_db
    return float("-inf") if snr is None else snr


def _dynamic(src: str, out_tmp: str, tmp: str, context: Mapping[str, Any] | None, notes: list[str]) -> dict[str, Any]:
    """Dynamic int8: the default, or on a host without VNNI the best of three variants."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if host_has_vnni() is not False or not context or "feeds" not in context:
        quantize_dynamic(src, out_tmp, weight_type=QuantType.QInt8)
        return {"onnx_weights": "QInt8"}
    variants = {"QInt8": {"weight_type": QuantType.QInt8}, "QUInt8": {"weight_type": QuantType.QUInt8},
                "QInt8, reduce_range": {"weight_type": QuantType.QInt8, "reduce_range": True}}
    scores: dict[str, float] = {}
    for name, kw in variants.items():
        path = os.path.join(tmp, f"dyn-{len(scores)}.onnx")
        quantize_dynamic(src, path, **kw)
        scores[name] = _measure(path, context)
    best = max(scores, key=lambda k: scores[k])
    os.replace(os.path.join(tmp, f"dyn-{list(variants).index(best)}.onnx"), out_tmp)
    shown = ", ".join(f"{k} {v:.1f} dB" for k, v in scores.items())
    notes.append(f"host without VNNI: {best} weights kept, the best measured ({shown})"
                 if best != "QInt8" else f"host without VNNI: the QInt8 default kept, the best measured ({shown})")
    return {"onnx_weights": best, "onnx_variants_snr_db": scores}


def _loads(path: str) -> None:
    """Raise where ONNX Runtime cannot load ``path``."""
    import onnxruntime as ort

    ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def _int4(src: str, out_tmp: str, block: int, notes: list[str]) -> None:
    """Blockwise symmetric int4 weights on MatMul and Gather (embedding tables), RTN; ``n/a``
    where no weight of the graph takes them."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(src)
    if not any(n.op_type in ("MatMul", "Gather") for n in model.graph.node):
        raise NotApplicable("int4 applies to MatMul and Gather weights, and this graph has none: every op stays float")
    errors_seen = []
    for ops in (("MatMul", "Gather"), ("MatMul",)):
        try:
            q = MatMulNBitsQuantizer(model if not errors_seen else onnx.load(src), bits=4, block_size=block,
                                     is_symmetric=True, op_types_to_quantize=ops,
                                     quant_axes=(("MatMul", 0), ("Gather", 1)))
            q.process()
            kinds = [n.op_type for n in q.model.model.graph.node]
            if not any(k in ("MatMulNBits", "GatherBlockQuantized") for k in kinds):
                raise NotApplicable(f"no MatMul or Gather weight of this graph takes int4 block {block} "
                                    "(no constant weight, or a shape the block does not divide): every op stays float")
            q.model.save_model_to_file(out_tmp, use_external_data_format=False)
            _loads(out_tmp)  # its int4 Gather can write a graph ONNX Runtime itself rejects
        except NotApplicable:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT's quantizer raises many types
            errors_seen.append(str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__)
            continue
        if errors_seen:
            notes.append(f"embedding tables stay float: {errors_seen[0]}")
        if "MatMul" in kinds:
            notes.append(f"MatMul x{kinds.count('MatMul')} stay float (no constant weight, or a shape int4 does not take)")
        return
    raise ConversionError(f"ONNX int4 quantization failed: {errors_seen[-1]}")


def quantize(float_path: str, out_path: str, recipe_json: dict[str, Any],
             calibration: Mapping[str, np.ndarray] | None = None,
             context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgekit.fsutil import move_into_place
    from edgekit.quantize.recipes import Approach, Recipe

    recipe = Recipe.from_json(recipe_json)
    t0 = time.perf_counter()
    notes: list[str] = []
    meta: dict[str, Any] = {"engine": "onnxruntime"}
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
                meta.update(_dynamic(src, out_tmp, tmp, context, notes))
            elif recipe.approach is Approach.ONNX_INT4:
                _int4(src, out_tmp, recipe.block_size or 32, notes)

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
        except (ConversionError, InputError):
            raise
        except Exception as exc:  # noqa: BLE001 - ORT's quantizer raises many types
            raise ConversionError(f"ONNX {recipe.mode} quantization failed: {str(exc).splitlines()[0][:300]}") from None
        move_into_place(out_tmp, out_path)
    return {**meta, "convert_s": time.perf_counter() - t0, "notes": notes}
