"""Per-layer error of an int8 TFLite model, and selective quantization (TensorFlow worker).

TFLite's QuantizationDebugger runs the float and the quantized model side by side and hands
each op's float and quantized output to a metric. Cumulative error alone blames every layer
downstream of a bad one, so each layer is ranked by the SNR it *loses*: its output's SNR
against the SNR of its activation inputs. The noise-to-signal ratio is taken per channel
(last axis) and the median used, so one huge channel cannot hide the channels it crushed.

Selective quantization is greedy: keep the worst layer in float, measure again, repeat until
the gate passes (an approximation of the smallest set; each step re-ranks).
"""
from __future__ import annotations

import csv
import io
import math
import re
from typing import Any, Mapping

import numpy as np


def channel_nsr(ref: np.ndarray, err: np.ndarray) -> float:
    """Noise-to-signal of ``err`` against ``ref`` per channel (the last axis; rows are
    samples), the median over the channels that carry signal at all; 0.0 where none does."""
    sig = np.sqrt(np.mean(ref ** 2, axis=0))
    noise = np.sqrt(np.mean(err ** 2, axis=0))
    live = sig > 1e-6 * (sig.max() + 1e-30)
    if not live.any():
        return 0.0
    return float(np.median(noise[live] / sig[live]))


def _nsr(f: np.ndarray, q: np.ndarray, scale: float, zp: int) -> float:
    f64 = np.asarray(f, dtype=np.float64)
    d = (np.asarray(q, dtype=np.float64) - zp) * scale - f64
    if f64.ndim == 0:
        return float(abs(d) / (abs(f64) + 1e-12))
    return channel_nsr(f64.reshape(-1, f64.shape[-1]), d.reshape(-1, d.shape[-1]))


def _db(nsr: float) -> float:
    return float("inf") if nsr <= 0 else -20 * math.log10(nsr)


def _scopes(tensor_name: str, model_name: str | None) -> list[str]:
    """The layer-level name scopes in a tensor name, in order: the part under the model's own
    scope (``cnn_1/conv_1_1/Relu`` -> ``conv_1_1``), or every part when there is none."""
    out = []
    for seg in tensor_name.split(";"):
        parts = seg.split("/")
        if model_name and len(parts) > 1 and re.fullmatch(rf"{re.escape(model_name)}(_\d+)*", parts[0]):
            out.append(parts[1])
        else:
            out.extend(parts)
    return out


def keras_layer_map(tensor_names: list[str], layer_names: list[str], model_name: str | None = None,
                    prefer: list[str] | None = None) -> dict[str, str]:
    """Each TFLite tensor's Keras layer, for the tensors whose layer can be told.

    Tracing for export re-opens name scopes, and TensorFlow makes each unique by appending
    ``_N``: layer ``conv2d`` may run under ``conv2d_1`` and layer ``conv2d_1`` under
    ``conv2d_1_2``, so a name alone is ambiguous. Scopes are made unique in call order, and a
    later name is never shorter than the one it collided with: walking the layers in model
    order, each takes the shortest still-unclaimed scope of its own ``name(_N)*`` family.
    ``prefer``: the layers that own weight matrices, chosen first among a fused op's names.
    """
    scopes = {sc for t in tensor_names for sc in _scopes(t, model_name)}
    pref = set(prefer or ())
    owner: dict[str, str] = {}
    for name in layer_names:
        family = re.compile(rf"{re.escape(name)}(_\d+)*")
        free = [sc for sc in scopes if sc not in owner and family.fullmatch(sc)]
        if free:
            owner[min(free, key=lambda sc: (len(sc), sc))] = name
    out = {}
    for t in tensor_names:
        # the innermost layer that can be told: in a model nested in a model (a keras-hub task
        # around its backbone) the block, not the backbone that holds every block; of a fused
        # op's names (``conv/Conv2D;bn/FusedBatchNorm``) the first
        found = [owner[sc] for seg in t.split(";") for sc in reversed(_scopes(seg, model_name)) if sc in owner]
        # a fused op names its activation and batch norm too: the layer with the weights, where known
        layer = next((x for x in found if x in pref), found[0] if found else None)
        if layer is not None:
            out[t] = layer
    return out


def keras_layer_for(tensor_name: str, layer_names: list[str], model_name: str | None = None) -> str | None:
    """One tensor's layer (see ``keras_layer_map``, which should be given all tensors)."""
    return keras_layer_map([tensor_name], layer_names, model_name).get(tensor_name)


def _converter(ctx: Any, calibration: Mapping[str, np.ndarray], workdir: str) -> Any:
    import tensorflow as tf

    from edgekit.converters.tflite import float_saved_model, recipe_configurer
    from edgekit.quantize.recipes import Approach, Recipe

    sm_dir, _ = float_saved_model(ctx, workdir)
    conv = tf.lite.TFLiteConverter.from_saved_model(sm_dir)
    recipe_configurer(Recipe("int8", "tflite", Approach.INT8), dict(calibration), ctx)(conv)
    return conv


def _input_order(buf: bytes) -> list[str]:
    from edgekit.runtimes.tflite_ops import schema

    s = schema()
    m = s.Model.GetRootAsModel(buf, 0)
    sg = m.Subgraphs(0)
    names = []
    for i in range(sg.InputsLength()):
        n = sg.Tensors(sg.Inputs(i)).Name().decode()
        names.append(re.sub(r"^serving_default_", "", n).split(":")[0])
    return names


def _topology(buf: bytes) -> dict[str, list[str]]:
    """op output tensor name -> input tensor names (first subgraph). By name: the debugger's
    tensor indices belong to its instrumented model, not to the plain one."""
    from edgekit.runtimes.tflite_ops import schema

    m = schema().Model.GetRootAsModel(buf, 0)
    sg = m.Subgraphs(0)

    def name(i: int) -> str:
        return (sg.Tensors(i).Name() or b"").decode()

    out = {}
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        ins = [name(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
        for k in range(op.OutputsLength()):
            out[name(op.Outputs(k))] = ins
    return out


# An ideal 8-bit quantization of a well-spread signal keeps about 6.02 * 8 = 48 dB; a layer
# fed only by the model input is charged for what its output falls short of that.
IDEAL_INT8_SNR_DB = 48.0


def layer_report(ctx: Any, calibration: Mapping[str, np.ndarray], workdir: str,
                 denylist: list[str] | None = None) -> tuple[list[dict[str, Any]], bytes]:
    """Rank the layers of the int8 model (``denylist``: tensor names kept in float)."""
    import tensorflow as tf

    conv = _converter(ctx, calibration, workdir)
    plain = conv.convert()
    order = _input_order(plain)
    n = int(next(iter(calibration.values())).shape[0])
    dataset = [[np.asarray(calibration[name][i:i + 1], dtype=np.float32) for name in order] for i in range(min(n, 100))]
    opts = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"nsr": _nsr}, denylisted_nodes=list(denylist or []))
    conv = _converter(ctx, calibration, workdir)
    dbg = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=lambda: iter(dataset),
                                                     debug_options=opts)
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    buf.seek(0)
    stats = list(csv.DictReader(buf))
    topo = _topology(plain)
    nsr_by_name = {r["tensor_name"]: float(r["nsr"]) for r in stats}
    # InputLayers run no op: left in, they could claim a scope that belongs to a later layer
    layer_names = [layer.name for layer in ctx.model.layers if type(layer).__name__ != "InputLayer"]
    names = [r["tensor_name"] for r in stats]
    layer_of: dict[str, str | None] = dict(keras_layer_map(names + [i for t in names for i in topo.get(t, [])],
                                                           layer_names, ctx.model.name))
    previous = None
    for t in names:  # the dump is in execution order
        if layer_of.get(t) is None:  # a fused activation's output, named after the signature
            feeding = [layer_of.get(i) for i in topo.get(t, [])]
            layer_of[t] = next((x for x in feeding if x), previous)
        previous = layer_of[t]
    rows = []
    for r in stats:
        snr_out = _db(float(r["nsr"]))
        measured_in = [nsr_by_name[t] for t in topo.get(r["tensor_name"], []) if t in nsr_by_name]
        snr_in = _db(max(measured_in)) if measured_in else IDEAL_INT8_SNR_DB
        rows.append({
            "tensor": r["tensor_name"], "op": r["op_name"],
            "layer": layer_of[r["tensor_name"]],
            "snr_db": snr_out, "snr_in_db": snr_in, "snr_lost_db": max(0.0, snr_in - snr_out),
            "scale": float(r["scale"]) if r.get("scale") else None,
        })
    rows.sort(key=lambda x: -x["snr_lost_db"])
    model = dbg.get_nondebug_quantized_model() if denylist else plain
    return rows, model


def explain_and_select(source: Mapping[str, Any], calibration: Mapping[str, np.ndarray], feeds: Mapping[str, np.ndarray],
                       workdir: str, selective: bool = True, max_float_layers: int = 8) -> dict[str, Any]:
    """The per-layer report, and with ``selective`` the layers kept in float until int8 meets
    its default quality criteria on ``feeds``; returns the report, the steps and the model."""
    from edgekit.models.keras_io import call
    from edgekit.tasks import _context
    from edgekit.validate import compare, default_tolerance

    ctx = _context(source)
    reference = call(ctx.model, feeds, ctx.spec.input_names, ctx.spec.output_names)
    tol = default_tolerance("int8")

    def judge(model: bytes) -> Any:
        import tempfile

        from edgekit.runtime import load

        with tempfile.NamedTemporaryFile(suffix=".tflite", dir=workdir) as fh:
            fh.write(model)
            fh.flush()
            out = load(fh.name).predict(dict(feeds))
        return compare(reference, out, tol)

    report, model = layer_report(ctx, calibration, workdir)
    first = judge(model)
    steps = [{"float_layers": [], "passed": first.passed, "snr_db": first.min_snr_db, "size": len(model)}]
    kept: list[str] = []
    ranking = report
    while selective and not steps[-1]["passed"] and len(kept) < max_float_layers:
        candidate = next((r for r in ranking if r["tensor"] not in kept and r["op"] != "SOFTMAX"), None)
        if candidate is None:
            break
        kept.append(candidate["tensor"])
        ranking, model = layer_report(ctx, calibration, workdir, kept)
        c = judge(model)
        steps.append({"float_layers": list(kept), "passed": c.passed, "snr_db": c.min_snr_db, "size": len(model)})
    layer_of = {r["tensor"]: r["layer"] for r in report}
    for s in steps:
        s["float_keras_layers"] = [layer_of.get(t) or t for t in s["float_layers"]]
    return {"report": report, "steps": steps, "model": model if selective else None,
            "passed": steps[-1]["passed"]}
