"""ONNX through tf2onnx, in process, from a ``tf.function`` of named inputs to named outputs.

tf2onnx's Keras entry point fails on Sequential models with Keras 3 and Keras' own ONNX
export patches numpy and tf2onnx for the whole process (see FIELD-NOTES); converting the
function directly avoids both. The opset is always explicit, and the batch dimension,
which tf2onnx names ``unk__N`` with N changing per export, is renamed ``batch`` everywhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.converters import DEFAULT_OPSET
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


class OnnxExporter(Exporter):
    name = "onnx"
    allowed_options = frozenset({"opset"})

    def _write(self, ctx: ExportContext, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        import onnx
        import tensorflow as tf

        from edgekit.converters.saved_model import input_signature, serving_fn

        opset = int(options.get("opset", DEFAULT_OPSET))
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise ConversionError(f"opset {opset} is outside the supported range {MIN_OPSET}..{MAX_OPSET}")
        try:
            import tf2onnx
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ConversionError(f"tf2onnx is not installed ({exc}): pip install tf2onnx") from None
        sig = input_signature(ctx.spec)
        fn = tf.function(serving_fn(ctx.model, ctx.spec), input_signature=sig, autograph=False)
        try:
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=sig, opset=opset)
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f"ONNX conversion failed: {first_line(exc)}") from None
        name_batch_dim(proto)
        got_in = [i.name for i in proto.graph.input]
        got_out = [o.name for o in proto.graph.output]
        if sorted(got_in) != sorted(ctx.spec.input_names) or sorted(got_out) != sorted(ctx.spec.output_names):
            raise ConversionError(
                f"ONNX graph names differ from the model's: inputs {got_in}, outputs {got_out}"
            )
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f"ONNX checker rejected the graph: {first_line(exc)}") from None
        atomic_write_bytes(path, proto.SerializeToString())
        return {"opset": opset, "ops": sorted({n.op_type for n in proto.graph.node})}
