"""ONNX through tf2onnx, in process, from a ``tf.function`` of named inputs to named outputs.

tf2onnx's Keras entry point fails on Sequential models with Keras 3 and Keras' own ONNX
export patches numpy and tf2onnx for the whole process (see FIELD-NOTES); converting the
function directly avoids both. The opset is always explicit, and the batch dimension,
which tf2onnx names ``unk__N`` with N changing per export, is renamed ``batch`` everywhere.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgekit.converters import DEFAULT_OPSET, FORMATS
from edgekit.converters.base import ExportContext, Exporter, first_line
from edgekit.errors import ConversionError
from edgekit.fsutil import atomic_write_bytes

MIN_OPSET, MAX_OPSET = 13, 21


def name_batch_dim(model_proto: Any, batch_name: str = "batch") -> None:
    """Rename the symbolic batch dimension of the inputs to ``batch_name`` in the whole graph."""
    symbols = set()
    for vi in model_proto.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].dim_param:
            symbols.add(dims[0].dim_param)
    if not symbols:
        return
    g = model_proto.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in symbols:
                d.dim_param = batch_name


def _erfc_as_one_minus_erf(ctx: Any, node: Any, name: str, args: Any) -> Any:
    """TF's Erfc (exact GELU: ``0.5 * x * erfc(-x / sqrt(2))``, in every BERT-style model)
    has no tf2onnx conversion; ONNX has Erf, and erfc(x) = 1 - erf(x)."""
    import numpy as np
    from tf2onnx import utils

    node.type = "Erf"
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
    one = ctx.make_const(utils.make_name("erfc_one"), np.array(1, dtype=dtype))
    ctx.insert_new_node_on_output("Sub", node.output[0], inputs=[one.output[0], node.output[0]])
    return node


def _tflite_gelu(ctx: Any, node: Any, name: str, args: Any) -> Any:
    """TFLite's fused GELU (``TFL_GELU``, what the TFLite converter makes of Keras' gelu) has
    no tf2onnx conversion; write it out in ONNX ops: exact 0.5*x*(1 + erf(x/sqrt 2)), or the
    tanh approximation 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715 x^3)))."""
    import numpy as np
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
    approximate = bool(node.get_attr_value("approximate", False))

    def const(v: float) -> str:
        return ctx.make_const(utils.make_name("gelu_c"), np.array(v, dtype=dtype)).output[0]

    def op(kind: str, *inputs: str) -> str:
        return ctx.make_node(kind, list(inputs)).output[0]

    x = node.input[0]
    if approximate:
        inner = op("Mul", op("Add", x, op("Mul", op("Mul", op("Mul", x, x), x), const(0.044715))),
                   const(float(np.sqrt(2.0 / np.pi))))
        gate = op("Add", op("Tanh", inner), const(1.0))
    else:
        gate = op("Add", op("Erf", op("Div", x, const(float(np.sqrt(2.0))))), const(1.0))
    node.type = "Mul"
    for key in list(node.attr):
        del node.attr[key]
    ctx.replace_inputs(node, [op("Mul", x, const(0.5)), gate])
    return node


def _xla_dynamic_update_slice(ctx: Any, node: Any, name: str, args: Any) -> Any:
    """XLA's DynamicUpdateSlice (``keras.ops.slice_update``: how keras-hub writes a KV cache)
    has no tf2onnx conversion; write it as ONNX ScatterND. XLA clamps each start index so
    that the update fits (``0 <= start <= operand - update``); every position of the update
    gets the index ``start + its own``."""
    import numpy as np

    operand, update, starts = node.input[0], node.input[1], node.input[2]
    rank = ctx.get_rank(operand)
    if rank is None:
        raise ValueError("XlaDynamicUpdateSlice on an operand of unknown rank")

    def op(kind: str, *inputs: str, **attr: Any) -> str:
        return ctx.make_node(kind, list(inputs), attr=attr).output[0]

    def const(v: Any) -> str:
        from tf2onnx import utils

        return ctx.make_const(utils.make_name("dus_c"), np.asarray(v, dtype=np.int64)).output[0]

    shape_o, shape_u = op("Shape", operand), op("Shape", update)
    start = op("Max", op("Min", op("Cast", starts, to=7), op("Sub", shape_o, shape_u)), const([0] * rank))
    parts = []
    for i in range(rank):
        s_i = op("Gather", start, const(i), axis=0)
        r = op("Range", s_i, op("Add", s_i, op("Gather", shape_u, const(i), axis=0)), const(1))
        others = [a for a in range(rank) if a != i]
        r = op("Unsqueeze", r, const(others)) if others else r
        parts.append(op("Unsqueeze", op("Expand", r, shape_u), const([rank])))
    indices = op("Concat", *parts, axis=rank) if rank > 1 else parts[0]
    node.type = "ScatterND"
    for key in list(node.attr):
        del node.attr[key]
    ctx.replace_inputs(node, [operand, indices, update])
    return node


CUSTOM_OP_HANDLERS = {"Erfc": (_erfc_as_one_minus_erf, []),
                      "XlaDynamicUpdateSlice": (_xla_dynamic_update_slice, [])}
TFLITE_OP_HANDLERS = {"TFL_GELU": (_tflite_gelu, [])}


def _without_captured_constants(fn: Any, in_names: list[str], out_names: list[str], sig: list[Any]) -> Any:
    """tf2onnx turns every captured non-variable tensor (a constant a Keras graph computed
    at build time, e.g. ``keras.ops.arange`` position ids) into an extra graph input. Freeze
    such a function first, so captures become constants, and convert a wrapper around it."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    cf = fn.get_concrete_function()
    if not any(t.dtype != tf.resource for t in cf.captured_inputs):
        return fn
    frozen = convert_variables_to_constants_v2(cf)
    order = sorted(out_names)  # a dict's outputs flatten in sorted-key order

    def call_frozen(*tensors: Any) -> dict[str, Any]:
        return dict(zip(order, frozen(*tensors)))

    from edgekit.converters.saved_model import _positional

    return tf.function(_positional(call_frozen, in_names), input_signature=sig, autograph=False)


def rename_io(proto: Any, mapping: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every reference to them) per ``mapping``."""
    g = proto.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.name in mapping:
            vi.name = mapping[vi.name]
    for node in g.node:
        for i, n in enumerate(node.input):
            if n in mapping:
                node.input[i] = mapping[n]
        for i, n in enumerate(node.output):
            if n in mapping:
                node.output[i] = mapping[n]


def _tflite_signature_names(tflite_path: str) -> dict[str, str]:
    """TFLite tensor name -> signature (model) name, for the serving signature."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=tflite_path)
    tensor = {d["index"]: d["name"] for d in it.get_tensor_details()}
    sigs = it.get_signature_list()
    if not sigs:
        return {}
    runner = it.get_signature_runner("serving_default" if "serving_default" in sigs else next(iter(sigs)))
    out = {}
    for details in (runner.get_input_details(), runner.get_output_details()):
        for name, d in details.items():
            if d["index"] in tensor:
                out[tensor[d["index"]]] = name
    return out


def _from_tflite(ctx: ExportContext, tflite_path: str, opset: int) -> Any:
    """tf2onnx from the run's own (already verified) TFLite file: TFLite's converter lowers
    graphs tf2onnx cannot take from TensorFlow (grouped convolutions compiled as nested XLA
    functions, some attention layouts)."""
    import tf2onnx

    proto, _ = tf2onnx.convert.from_tflite(tflite_path, opset=opset, custom_op_handlers=TFLITE_OP_HANDLERS)
    rename_io(proto, _tflite_signature_names(tflite_path))
    return proto


def _from_keras_export(ctx: ExportContext, workdir: str, opset: int) -> Any:
    import onnx

    out = Path(workdir) / "keras_export.onnx"
    ctx.model.export(str(out), format="onnx", opset_version=opset, verbose=False)
    proto = onnx.load(str(out))
    g = proto.graph
    if len(g.input) == len(ctx.spec.inputs) == 1 and len(g.output) == len(ctx.spec.outputs) == 1:
        # Keras names a single input/output after its internal tensors: name them as the model does
        rename_io(proto, {g.input[0].name: ctx.spec.input_names[0], g.output[0].name: ctx.spec.output_names[0]})
    return proto


def _from_function(ctx: ExportContext, opset: int, batch: int | None = None) -> Any:
    """tf2onnx from a ``tf.function`` of the model. With ``batch``, the whole signature is
    static: tf2onnx mis-converts some graphs' shape arithmetic on a dynamic batch (MiT /
    SegFormer attention: a MatMul ONNX Runtime rejects), and folds it correctly when static."""
    import tensorflow as tf
    import tf2onnx

    from edgekit.converters.saved_model import input_signature, serving_fn

    sig = input_signature(ctx.spec, None, batch)
    fn = tf.function(serving_fn(ctx.model, ctx.spec), input_signature=sig, autograph=False)
    fn = _without_captured_constants(fn, ctx.spec.input_names, ctx.spec.output_names, sig)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=sig, opset=opset,
                                             custom_op_handlers=CUSTOM_OP_HANDLERS)
    return proto


# Export paths tried in order by the pipeline until one yields an artifact that passes its
# check; the row records which one did and why the earlier ones failed.
PATHS = FORMATS["onnx"].paths


class OnnxExporter(Exporter):
    name = "onnx"
    allowed_options = frozenset({"opset", "path", "tflite_file", "check_shapes", "check_batch"})

    def _write(self, ctx: ExportContext, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        import onnx

        opset = int(options.get("opset", DEFAULT_OPSET))
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise ConversionError(f"opset {opset} is outside the supported range {MIN_OPSET}..{MAX_OPSET}")
        route = options.get("path") or PATHS[0]
        try:
            if route == "tf2onnx":
                proto = _from_function(ctx, opset)
            elif route == "tf2onnx-from-tflite":
                proto = _from_tflite(ctx, self._tflite_file(ctx, options), opset)
            elif route == "keras-export":
                proto = _from_keras_export(ctx, ctx.cache.get("workdir") or str(path.parent), opset)
            elif route == "tf2onnx-fixed-batch":
                if any(s.variable_dims for s in ctx.spec.inputs):
                    raise ConversionError("a fixed batch needs every other dimension fixed too")
                proto = _from_function(ctx, opset, int(options.get("check_batch") or 1))
            else:
                raise ConversionError(f"unknown ONNX export path {route!r}; choose from {', '.join(PATHS)}")
        except ConversionError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f"ONNX conversion ({route}) failed: {first_line(exc)}") from None
        name_batch_dim(proto)
        self._check_graph(ctx, proto, opset)
        atomic_write_bytes(path, proto.SerializeToString())
        meta: dict[str, Any] = {"opset": opset, "ops": sorted({n.op_type for n in proto.graph.node}), "export_path": route}
        if route == "tf2onnx-fixed-batch":
            meta["notes"] = [f"exported with a fixed batch of {options.get('check_batch') or 1}: tf2onnx mis-converts "
                             "this graph with a dynamic batch; choose it with --batch-size"]
        return meta

    @staticmethod
    def _tflite_file(ctx: ExportContext, options: dict[str, Any]) -> str:
        given = options.get("tflite_file")
        if given and Path(given).is_file():
            return given
        from edgekit.converters.tflite import TFLiteExporter

        out = Path(ctx.cache.get("workdir") or tempfile.mkdtemp(prefix="edgekit-tf-")) / "for_onnx.tflite"
        TFLiteExporter().export(ctx, str(out), {"check_shapes": options.get("check_shapes")})
        return str(out)

    @staticmethod
    def _check_graph(ctx: ExportContext, proto: Any, opset: int) -> None:
        import onnx

        got_in = [i.name for i in proto.graph.input]
        got_out = [o.name for o in proto.graph.output]
        if sorted(got_in) != sorted(ctx.spec.input_names) or sorted(got_out) != sorted(ctx.spec.output_names):
            raise ConversionError(
                f"ONNX graph names differ from the model's: inputs {got_in}, outputs {got_out}"
            )
        unconverted = sorted({n.op_type for n in proto.graph.node
                              if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
        if unconverted:
            raise ConversionError(
                f"tf2onnx has no ONNX conversion for TensorFlow op(s) {', '.join(unconverted)} (opset {opset})"
            )
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f"ONNX checker rejected the graph: {first_line(exc)}") from None
