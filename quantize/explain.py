"""``edgekit debug-quant``: which layers int8 hurts, and what keeping them in float costs
(parent side: no TensorFlow here; the work runs in the workers)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from edgekit.errors import InputError
from edgekit.fsutil import atomic_write_bytes, remove_path
from edgekit.models.source import detect
from edgekit.specs import ModelSpec
from edgekit.worker import WorkerPool, default_pool


def debug_quant(model: str, calibration: str, out_dir: str | None = None, selective: bool = True,
                samples: int = 200, unsafe: bool = False, timeout: float = 600.0,
                progress: Callable[[str], None] | None = None, pool: WorkerPool | None = None,
                fmt: str = "tflite") -> dict[str, Any]:
    """Rank the layers of MODEL's int8 TFLite conversion by the SNR each loses; with
    ``selective``, keep the worst in float until int8's default criteria pass, write
    ``model_int8_selective.tflite`` and measure its size and latency against plain int8 and float32."""
    from edgekit.quantize.calibration import load_calibration

    say = progress or (lambda _m: None)
    source = detect(model, unsafe=unsafe)
    pool = pool or default_pool()
    if out_dir is not None:
        from edgekit.pipeline import check_out_dir

        check_out_dir(Path(out_dir))
    say(f"loading {source.display}")
    spec = ModelSpec.from_json(pool.tf.call("edgekit.tasks:inspect_model", source.to_json(), timeout=timeout, tag="load"))
    cal = load_calibration(calibration, spec.inputs, samples)
    n = cal.count
    # judge on calibration samples the search did not see first: the last quarter
    split = max(1, n - max(1, n // 4))
    fit = {k: v[:split] for k, v in cal.arrays.items()}
    check = {k: v[split:] if n > 1 else v for k, v in cal.arrays.items()}
    scratch = tempfile.mkdtemp(prefix="edgekit-dq-")
    if fmt == "onnx":
        try:
            return _debug_onnx(source, spec, fit, scratch, pool, timeout, say, cal)
        finally:
            remove_path(scratch)
    if fmt != "tflite":
        raise InputError(f"debug-quant --format {fmt}: choose tflite or onnx")
    try:
        say("measuring per-layer error of the int8 model" + (" and searching layers to keep in float" if selective else ""))
        res = pool.tf.call("edgekit.quantize.debug:explain_and_select", source.to_json(), fit, check, scratch,
                           selective, timeout=timeout, tag="debug-quant")
        res["calibration"] = cal.description
        res["meaningful"] = cal.meaningful
        model_bytes = res.pop("model")
        if selective and model_bytes is not None and out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            path = out / "model_int8_selective.tflite"
            atomic_write_bytes(path, model_bytes)
            res["selective_path"] = str(path)
            res["costs"] = _costs(source, spec, fit, check, str(path), scratch, pool, timeout)
        return res
    finally:
        remove_path(scratch)


def _debug_onnx(source: Any, spec: ModelSpec, fit: dict[str, Any], scratch: str, pool: WorkerPool, timeout: float,
                say: Callable[[str], None], cal: Any) -> dict[str, Any]:
    """ONNX: QDQ (static int8) against float, per activation, with ONNX Runtime's tools."""
    from edgekit.quantize.recipes import Approach, Recipe

    f32, qdq = os.path.join(scratch, "float.onnx"), os.path.join(scratch, "qdq.onnx")
    say("exporting ONNX and quantizing it to QDQ int8")
    pool.tf.call("edgekit.tasks:export", source.to_json(), "onnx", f32, {"opset": 17}, scratch, timeout=timeout,
                 tag="export:onnx")
    pool.rt.call("edgekit.quantize.onnx_quant:quantize", f32, qdq,
                 Recipe("static", "onnx", Approach.ONNX_STATIC, calibration_method="minmax").to_json(), fit,
                 timeout=timeout, tag="export:onnx:static")
    say("comparing every activation of the QDQ model with the float model")
    report = pool.rt.call("edgekit.quantize.onnx_debug:onnx_layer_report", f32, qdq, fit, scratch, list(spec.layers),
                          timeout=timeout, tag="debug-quant:onnx")
    return {"format": "onnx", "report": report, "steps": [], "passed": True, "calibration": cal.description,
            "meaningful": cal.meaningful}


def _costs(source: Any, spec: ModelSpec, fit: dict[str, Any], check: dict[str, Any], selective_path: str,
           scratch: str, pool: WorkerPool, timeout: float) -> dict[str, Any]:
    """Size and median latency (LiteRT) of float32, plain int8 and the selective model."""
    from edgekit.quantize.recipes import Approach, Recipe

    paths = {"float32": os.path.join(scratch, "float.tflite"), "int8": os.path.join(scratch, "int8.tflite"),
             "int8_selective": selective_path}
    pool.tf.call("edgekit.tasks:export", source.to_json(), "tflite", paths["float32"], {"recipe": None, "calibration": None},
                 scratch, timeout=timeout, tag="export:tflite")
    pool.tf.call("edgekit.tasks:export", source.to_json(), "tflite", paths["int8"],
                 {"recipe": Recipe("int8", "tflite", Approach.INT8).to_json(), "calibration": fit},
                 scratch, timeout=timeout, tag="export:tflite:int8")
    one = {k: v[:1] for k, v in check.items()}
    out = {}
    for name, p in paths.items():
        r = pool.rt.call("edgekit.tasks:run_artifact", "litert", p, one, 50, timeout=timeout, tag=f"bench:{name}")
        out[name] = {"size": os.path.getsize(p), "latency_ms": r["latency"]["median_ms"]}
    return out


def _table(head: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Columns as wide as their longest entry: layer and tensor names are printed whole."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(head), *(line(r) for r in rows)]


def render(res: dict[str, Any], top: int = 15) -> str:
    from edgekit.units import size_text

    shown = res["report"][:top]
    if res.get("format") == "onnx":
        rows = [[str(i), r["layer"] or "-", r["tensor"], f"{r['snr_in_db']:.1f}", f"{r['snr_db']:.1f}",
                 f"{r['snr_lost_db']:.1f}"] for i, r in enumerate(shown, 1)]
        lines = _table(["rank", "layer", "tensor", "SNR in", "SNR out", "lost (dB)"], rows, {0, 3, 4, 5})
        lines.append("SNR against the float model's same tensor; ranked by the SNR each tensor loses against its inputs")
        lines.append(f"calibration: {res['calibration']}" + ("" if res["meaningful"] else " -- NOT meaningful"))
        return "\n".join(lines)
    rows = [[str(i), r["layer"] or r["tensor"], r["op"], f"{r['snr_in_db']:.1f}", f"{r['snr_db']:.1f}",
             f"{r['snr_lost_db']:.1f}"] for i, r in enumerate(shown, 1)]
    lines = _table(["rank", "layer", "op", "SNR in", "SNR out", "lost (dB)"], rows, {0, 3, 4, 5})
    if len(res["report"]) > top:
        lines.append(f"      ... {len(res['report']) - top} more layers")
    lines.append("")
    for s in res["steps"]:
        kept = ", ".join(s["float_keras_layers"]) or "none"
        lines.append(f"float layers: {kept}  output SNR {s['snr_db']:.1f} dB  {'PASS' if s['passed'] else 'fail'}"
                     f"  ({size_text(s['size'])})")
    if res.get("costs"):
        lines.append("")
        for k, v in res["costs"].items():
            lines.append(f"{k:<15} {size_text(v['size']):>9}  {v['latency_ms']:.3f} ms (LiteRT, batch 1)")
        lines.append(f"selective model: {res['selective_path']}")
    lines.append(f"calibration: {res['calibration']}" + ("" if res["meaningful"] else " -- NOT meaningful"))
    return "\n".join(lines)


def require_calibration(calibration: str | None) -> str:
    if not calibration:
        raise InputError("debug-quant needs calibration data: --calibration data.npz|digits|images/|file.csv|random")
    return calibration
