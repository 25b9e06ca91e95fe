"""TFLite quantization with the LiteRT Quantizer (``litert-quantizer``), from the run's float
``.tflite`` file, in the runtime worker (no TensorFlow).

Modes: ``dynamic`` (int8 weights channelwise, activations quantized at run time), ``float16``
(weights cast), ``int8``/``int16x8`` (static: calibrated activations, int8 weights; the model's
inputs and outputs stay float unless ``--io-dtype`` asks otherwise), ``int4`` (blockwise int4
weights on FULLY_CONNECTED and EMBEDDING_LOOKUP, float activations; a layer whose input
dimension the block does not divide gets int8 channelwise and the row says so), and a
precision per Keras layer (``edgekit.quantize.search`` chooses one; ``--quantize-recipe``
gives one by hand).

The quantizer's scopes are regular expressions over TFLite tensor names; edgekit addresses
each weight op by its exact scope and maps it back to its Keras layer (the same mapping as
``debug-quant``), so recipes and reports speak of Keras layer names.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgekit.errors import ConversionError, InputError, NotApplicable
from edgekit.quantize.recipes import LAYER_PRECISIONS

INT4_OPS = ("FULLY_CONNECTED", "EMBEDDING_LOOKUP")
# Ops whose constant weights a per-layer recipe can quantize (int8; int4 on INT4_OPS only).
WEIGHT_OPS = INT4_OPS + ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D_TRANSPOSE", "BATCH_MATMUL")
_WEIGHT_INPUT = {"CONV_2D_TRANSPOSE": 1}  # the weight's input index where it is not 1


@dataclass
class WeightOp:
    """One op with constant weights: its TFLite type, the quantizer's scope for it, its
    weight's shape, and the Keras layer it belongs to (None where it cannot be told)."""

    op: str
    scope: str
    tensor: str
    shape: tuple[int, ...]
    layer: str | None = None
    others: tuple[str, ...] = ()  # the weight's and bias's names: the layer where the output's name is the signature's

    def int4_ok(self, block: int) -> bool:
        """Blockwise int4 applies (the quantizer's blocks run along dimension 1)."""
        return self.op in INT4_OPS and len(self.shape) == 2 and self.shape[1] % block == 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 0

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "tensor": self.tensor, "shape": list(self.shape), "layer": self.layer}


def _lib() -> Any:
    try:
        from litert_quantizer import qtyping, quantizer
        from litert_quantizer.utils import tfl_flatbuffer_utils as fbu
    except ImportError as exc:
        from edgekit.errors import MissingDependencyError

        raise MissingDependencyError(f"the LiteRT Quantizer is not installed ({exc}): pip install litert-quantizer") from None
    return quantizer, qtyping, fbu


def weight_ops(buf: bytes, layer_names: list[str] | None = None, model_name: str | None = None,
               kernel_layers: list[str] | None = None) -> list[WeightOp]:
    """The ops with constant float weights, in execution order, each with its Keras layer."""
    from edgekit.quantize.debug import keras_layer_map

    _, _, fbu = _lib()
    model = fbu.read_model(buf)
    found: list[WeightOp] = []
    for sg in model.subgraphs:
        for op in sg.operators or []:
            name = fbu.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode, "CUSTOM")
            name = str(getattr(name, "value", name))
            if name not in WEIGHT_OPS:
                continue
            wi = _WEIGHT_INPUT.get(name, 1)
            if len(op.inputs) <= wi or op.inputs[wi] < 0:
                continue
            w = sg.tensors[op.inputs[wi]]
            b = model.buffers[w.buffer]
            constant = (b.data is not None and len(b.data) > 0) or bool(getattr(b, "offset", 0))
            if not constant or fbu.TENSOR_CODE_TO_TYPE.get(w.type) != "FLOAT32":
                continue
            out = sg.tensors[op.outputs[0]].name.decode("utf-8", "replace") if op.outputs else ""
            others = tuple(sg.tensors[i].name.decode("utf-8", "replace") for i in op.inputs[1:] if i >= 0)
            found.append(WeightOp(name, fbu.get_op_scope(op, sg.tensors), out, tuple(int(d) for d in w.shape),
                                  others=others))
    if layer_names:
        owner = keras_layer_map([w.tensor for w in found] + [o for w in found for o in w.others],
                                list(layer_names), model_name, kernel_layers)
        for w in found:
            w.layer = owner.get(w.tensor) or next((owner[o] for o in w.others if o in owner), None)
    return found


def scope_regex(ops: list[WeightOp]) -> str:
    """A regex the quantizer matches against exactly these ops' scopes and no other."""
    return "^(?:" + "|".join(re.escape(w.scope) for w in ops) + ")$"


def _granularity(qtyping: Any, block: int) -> Any:
    return getattr(qtyping.QuantGranularity, f"BLOCKWISE_{block}")


def _configure(q: Any, recipe: Any, ops: list[WeightOp], precisions: Mapping[str, str] | None, notes: list[str]) -> None:
    """Set the quantizer up for ``recipe`` (``precisions``: scope -> int4/int8/float for a
    per-layer recipe)."""
    from litert_quantizer import recipe as recipes

    from edgekit.quantize.recipes import Approach

    _, qtyping, _ = _lib()
    Op = qtyping.TFLOperationName
    a = recipe.approach
    if a is Approach.DYNAMIC_INT8:
        q.load_quantization_recipe(recipes.dynamic_wi8_afp32())
    elif a is Approach.FLOAT16:
        q.add_weight_only_config(".*", Op.ALL_SUPPORTED, 16, algorithm_key="float_casting")
    elif a in (Approach.INT8, Approach.INT16X8):
        q.add_static_config(".*", Op.ALL_SUPPORTED, 8 if a is Approach.INT8 else 16, 8)
        if recipe.io_dtype == "float32":  # the model's inputs and outputs stay float
            q.update_quantization_recipe(".*", Op.INPUT, algorithm_key="no_quantize")
            q.update_quantization_recipe(".*", Op.OUTPUT, algorithm_key="no_quantize")
    elif a in (Approach.INT4, Approach.MIXED):
        _apply_precisions(q, qtyping, ops, precisions or {}, recipe.block_size, notes)
    else:
        raise ConversionError(f"the LiteRT Quantizer has no mode {recipe.mode}")


def _apply_precisions(q: Any, qtyping: Any, ops: list[WeightOp], precisions: Mapping[str, str], block: int,
                      notes: list[str]) -> None:
    Op = qtyping.TFLOperationName
    groups: dict[tuple[str, str], list[WeightOp]] = {}
    narrowed = []
    for w in ops:
        p = precisions.get(w.scope, "float")
        if p == "int4" and not w.int4_ok(block):
            p = "int8"
            narrowed.append(w.layer or w.tensor)
        if p != "float":
            groups.setdefault((w.op, p), []).append(w)
    if narrowed:
        notes.append(f"int8 instead of int4 where block {block} does not divide the input dimension: "
                     + ", ".join(dict.fromkeys(narrowed)))
    if not groups:
        raise NotApplicable("no layer is quantized: every weight stays float")
    for (op, p), members in groups.items():
        bits, gran = (4, _granularity(qtyping, block)) if p == "int4" else (8, qtyping.QuantGranularity.CHANNELWISE)
        q.add_dynamic_config(scope_regex(members), getattr(Op, op), bits, gran)


def _signature(buf: bytes) -> tuple[str, dict[str, Any]]:
    """The float model's signature key and its inputs' dtypes (calibration is fed by name)."""
    from edgekit.runtime import _tflite_interpreter

    Interpreter, _ = _tflite_interpreter()
    it = Interpreter(model_content=buf)
    sigs = it.get_signature_list()
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
    details = it.get_signature_runner(key).get_input_details()
    return key, {n: np.dtype(d["dtype"]) for n, d in details.items()}


def _calibrate(q: Any, buf: bytes, calibration: Mapping[str, np.ndarray] | None) -> Any:
    if not q.need_calibration:
        return None
    if not calibration:
        raise ConversionError("static quantization needs calibration data")
    key, dtypes = _signature(buf)
    missing = [n for n in dtypes if n not in calibration]
    if missing:
        raise ConversionError(f"calibration data has no array for input(s) {missing} of the TFLite signature")
    n = int(next(iter(calibration.values())).shape[0])
    samples = [{k: np.asarray(calibration[k][i:i + 1], dtype=dt) for k, dt in dtypes.items()} for i in range(n)]
    return q.calibrate({key: samples}, num_threads=max(1, min(4, os.cpu_count() or 1)))


def quantize_bytes(buf: bytes, recipe: Any, ops: list[WeightOp], calibration: Mapping[str, np.ndarray] | None = None,
                   precisions: Mapping[str, str] | None = None) -> tuple[bytes, list[str]]:
    """The quantized model for ``recipe`` (with ``precisions`` per scope for a per-layer
    recipe), and the notes it gave rise to."""
    import contextlib
    import io

    quantizer, _, _ = _lib()
    notes: list[str] = []
    q = quantizer.Quantizer(bytearray(buf))
    _configure(q, recipe, ops, precisions, notes)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            cal = _calibrate(q, buf, calibration)
            out = q.quantize(cal, enable_progress_report=False).quantized_model
    except (ConversionError, InputError):
        raise
    except Exception as exc:  # noqa: BLE001 - the quantizer raises many types
        msg = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        if "not supported" in msg.lower() or "unsupported" in msg.lower():
            raise NotApplicable(f"the LiteRT Quantizer cannot make {recipe.mode} of this model: {msg}") from None
        raise ConversionError(f"LiteRT Quantizer {recipe.mode} failed: {msg}") from None
    if out is None:
        raise ConversionError(f"LiteRT Quantizer {recipe.mode} produced no model")
    return bytes(out), notes


_CASTS = {"QUANTIZE", "DEQUANTIZE"}


def float_compute_ops(buf: bytes) -> Counter:
    """The ops of a quantized model that still compute in float (float activations in and
    out), by op name; the casts at its float inputs and outputs left out."""
    from edgekit.runtimes.tflite_ops import _enum_names, schema

    _, _, fbu = _lib()
    names = _enum_names(schema().BuiltinOperator)  # every builtin (the quantizer's table has its own only)
    model = fbu.read_model(buf)
    left: Counter = Counter()
    for sg in model.subgraphs:
        for op in sg.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            if name in _CASTS:
                continue
            def floats(idx: Any) -> bool:
                return any(fbu.TENSOR_CODE_TO_TYPE.get(sg.tensors[i].type) == "FLOAT32"
                           and not _constant(model, sg.tensors[i]) for i in idx if i >= 0)

            if floats(op.inputs) and floats(op.outputs):  # float in, float out (SHAPE reads only a shape)
                left[name] += 1
    return left


def _constant(model: Any, tensor: Any) -> bool:
    b = model.buffers[tensor.buffer]
    return (b.data is not None and len(b.data) > 0) or bool(getattr(b, "offset", 0))


def float_ops_note(ops: list[WeightOp], quantized: set[str]) -> str | None:
    """Which weight ops stay float (``quantized``: the scopes that were quantized)."""
    left = Counter(w.op for w in ops if w.scope not in quantized)
    return None if not left else "weights that stay float: " + ", ".join(f"{k} x{v}" for k, v in sorted(left.items()))


def precisions_by_layer(ops: list[WeightOp], precisions: Mapping[str, str], block: int) -> list[dict[str, Any]]:
    """Per Keras layer (or tensor, where no layer is known): its ops and the precision they got."""
    rows: dict[str, dict[str, Any]] = {}
    for w in ops:
        p = precisions.get(w.scope, "float")
        if p == "int4" and not w.int4_ok(block):
            p = "int8"
        key = w.layer or w.tensor
        r = rows.setdefault(key, {"layer": key, "ops": [], "precision": p, "weights": 0})
        r["ops"].append(w.op)
        r["weights"] += w.size
        if LAYER_PRECISIONS.index(p) > LAYER_PRECISIONS.index(r["precision"]):
            r["precision"] = p  # a layer is reported at the widest precision any of its ops has
    return list(rows.values())


def match_layers(ops: list[WeightOp], layers: tuple[tuple[str, str], ...], default: str) -> tuple[dict[str, str], list[str]]:
    """A hand-written recipe (Keras layer name patterns -> precision, first match wins) as a
    precision per scope; and the patterns that matched no layer."""
    compiled = [(re.compile(p), p, prec) for p, prec in layers]
    used: set[str] = set()
    out = {}
    for w in ops:
        name = w.layer or w.tensor
        prec = default
        for rx, p, pr in compiled:
            if rx.fullmatch(name):
                prec = pr
                used.add(p)
                break
        out[w.scope] = prec
    return out, [p for _, p, _ in compiled if p not in used]


def quantize(float_path: str, out_path: str, recipe_json: dict[str, Any],
             calibration: Mapping[str, np.ndarray] | None = None, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the quantized ``out_path`` from ``float_path`` (the worker's entry point).

    ``context`` carries what a per-layer search needs (the check inputs, the model's outputs
    on them, the Keras layer names, the budget): see ``edgekit.quantize.search``."""
    from edgekit.fsutil import atomic_write_bytes
    from edgekit.quantize.recipes import Approach, Recipe

    recipe = Recipe.from_json(recipe_json)
    context = dict(context or {})
    t0 = time.perf_counter()
    buf = Path(float_path).read_bytes()
    meta: dict[str, Any] = {"engine": "litert-quantizer", "notes": []}
    if recipe.approach not in (Approach.INT8, Approach.INT16X8):
        buf = _with_lookups(buf, context, meta["notes"])
    ops = weight_ops(buf, context.get("layers"), context.get("model_name"), context.get("kernel_layers"))
    if recipe.approach is Approach.INT4 and not any(w.op in INT4_OPS for w in ops):
        present = ", ".join(f"{k}" for k in sorted({w.op for w in ops})) or "none"
        raise NotApplicable(f"int4 applies to FULLY_CONNECTED and EMBEDDING_LOOKUP weights, and this model has none "
                            f"(ops with weights: {present}): every op stays float")
    if recipe.approach is Approach.INT4 and not any(w.int4_ok(recipe.block_size) for w in ops):
        raise NotApplicable(f"no weight's input size is a multiple of the int4 block {recipe.block_size}: the file "
                            f"would be int8 throughout (use dynamic, or a smaller block)")
    precisions: dict[str, str] | None = None
    if recipe.approach is Approach.MIXED and recipe.search:
        from edgekit.quantize.search import search

        out, precisions, found = search(buf, recipe, ops, context, meta)
        meta["search"] = found
    else:
        if recipe.approach is Approach.MIXED:
            precisions, unused = match_layers(ops, recipe.layers, recipe.default)
            if unused:
                known = sorted({w.layer or w.tensor for w in ops})
                raise InputError(f"--quantize-recipe pattern(s) {unused} match no layer with weights; "
                                 f"the layers are: {', '.join(known[:12])}{' ...' if len(known) > 12 else ''}")
        elif recipe.approach is Approach.INT4:
            precisions = {w.scope: "int4" for w in ops if w.op in INT4_OPS}
        out, notes = quantize_bytes(buf, recipe, ops, calibration, precisions)
        meta["notes"].extend(notes)
        if recipe.approach in (Approach.INT8, Approach.INT16X8):
            left = float_compute_ops(out)
            listed = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(left.items()))
            if left and recipe.approach is Approach.INT16X8:
                raise NotApplicable(f"int16x8: no int16 kernel for {listed} (they would stay float); "
                                    f"use int8 or dynamic for this model")
            if left:
                meta["notes"].append(f"ops that stay float (no int8 kernel): {listed}")
    if precisions is not None:
        meta["layers"] = precisions_by_layer(ops, precisions, recipe.block_size or 32)
        note = float_ops_note(ops, {s for s, p in precisions.items() if p != "float"})
        if note:
            meta["notes"].append(note)
    atomic_write_bytes(Path(out_path), out)
    meta["convert_s"] = time.perf_counter() - t0
    meta["notes"].insert(0, "made by the LiteRT Quantizer from the float .tflite")
    return meta


def _with_lookups(buf: bytes, context: Mapping[str, Any], notes: list[str]) -> bytes:
    """``buf`` with its embedding tables as EMBEDDING_LOOKUP (which quantizes), where the
    rewritten float model computes exactly what the original does on the check inputs."""
    from edgekit.quantize.tflite_rewrite import gathers_to_embedding_lookups

    try:
        new, n = gathers_to_embedding_lookups(buf)
    except Exception as exc:  # noqa: BLE001 - a graph the rewrite does not know: quantize as it is
        notes.append(f"embedding tables stay float (GATHER not rewritten: {str(exc).splitlines()[0][:120]})")
        return buf
    if not n:
        return buf
    feeds = context.get("feeds")
    if feeds is not None:
        with tempfile.TemporaryDirectory(prefix="edgekit-lookup-") as d:
            try:
                a, b = run_bytes(buf, feeds, d), run_bytes(new, feeds, d)
                same = all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)
            except Exception as exc:  # noqa: BLE001
                same, why = False, str(exc).splitlines()[0][:120]
            else:
                why = "the rewritten graph computes other values"
        if not same:
            notes.append(f"embedding tables stay float (GATHER kept: {why})")
            return buf
    notes.append(f"{n} embedding table(s) looked up with EMBEDDING_LOOKUP, which quantizes (same float results)")
    return new


def run_bytes(buf: bytes, feeds: Mapping[str, np.ndarray], workdir: str, kernels: str = "xnnpack") -> dict[str, np.ndarray]:
    """Run a model held in memory exactly as the check runs files (bound by name)."""
    from edgekit.runtime import TFLitePredictor

    fd, path = tempfile.mkstemp(suffix=".tflite", dir=workdir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf)
        return TFLitePredictor(path, threads=1, kernels=kernels).predict(dict(feeds))
    finally:
        os.unlink(path)
