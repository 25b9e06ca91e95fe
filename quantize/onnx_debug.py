"""Per-layer error of an ONNX QDQ model (runs in the runtime worker: ONNX Runtime only).

ONNX Runtime's ``qdq_loss_debug`` tools give every quantized activation of the QDQ model
next to the same tensor of the float model. As for TFLite, each tensor's SNR against float
(per-channel median noise-to-signal, in dB) is cumulative, so layers are ranked by the SNR
they lose against their nearest measured inputs (found by walking the float graph back
through unquantized tensors). The noise of a tensor's own QuantizeLinear/DequantizeLinear
pair is shown too, but not ranked on: ORT places and shares QDQ pairs in ways that make it
a poor guide on its own (measured: it blamed the layer before the bad one).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from edgekit.quantize.debug import _db, channel_nsr, keras_layer_for
from edgekit.quantize.onnx_quant import calibration_reader


def _channel_snr_db(ref: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> float:
    def rows(arrays: Sequence[np.ndarray]) -> np.ndarray:
        mats = []
        for a in arrays:
            a = np.asarray(a, dtype=np.float64)
            mats.append(a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1))
        return np.concatenate(mats)

    f, q = rows(ref), rows(test)
    return _db(channel_nsr(f, q - f))  # no channel with signal: 0.0, +inf dB


def onnx_layer_report(float_path: str, qdq_path: str, calibration: Mapping[str, np.ndarray], workdir: str,
                      layer_names: Sequence[str] = (), samples: int = 50) -> list[dict[str, Any]]:
    from onnxruntime.quantization.qdq_loss_debug import (collect_activations, create_activation_matching,
                                                         modify_model_output_intermediate_tensors)

    f_aug, q_aug = os.path.join(workdir, "float_aug.onnx"), os.path.join(workdir, "qdq_aug.onnx")
    modify_model_output_intermediate_tensors(float_path, f_aug)
    modify_model_output_intermediate_tensors(qdq_path, q_aug)
    match = create_activation_matching(collect_activations(q_aug, calibration_reader(calibration, samples)),
                                       collect_activations(f_aug, calibration_reader(calibration, samples)))
    total = {name: _channel_snr_db(m["float"], m["post_qdq"]) for name, m in match.items() if m.get("float")}
    producers = _producers(float_path)
    rows = []
    for name, m in match.items():
        if name not in total:
            continue
        ins = _measured_inputs(name, producers, total)
        snr_in = min((total[i] for i in ins), default=48.0)
        rows.append({"tensor": name, "layer": keras_layer_for(name, list(layer_names)), "op": producers.get(name, ("input", []))[0],
                     "snr_in_db": snr_in, "snr_db": total[name], "snr_lost_db": max(0.0, snr_in - total[name]),
                     "own_qdq_snr_db": _channel_snr_db(m["pre_qdq"], m["post_qdq"])})
    rows.sort(key=lambda r: -r["snr_lost_db"])
    return rows


def _producers(path: str) -> dict[str, tuple[str, list[str]]]:
    """tensor -> (op type, input tensors) in the float graph."""
    import onnx

    g = onnx.load(path, load_external_data=False).graph
    out = {}
    for node in g.node:
        for o in node.output:
            out[o] = (node.op_type, [i for i in node.input if i])
    return out


def _measured_inputs(name: str, producers: dict[str, tuple[str, list[str]]], measured: dict[str, float]) -> list[str]:
    """The nearest measured tensors upstream of ``name`` (through unmeasured ones)."""
    found, seen = [], {name}
    frontier = list(producers.get(name, ("", []))[1])
    while frontier:
        t = frontier.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in measured:
            found.append(t)
        elif t in producers:
            frontier.extend(producers[t][1])
    return found
