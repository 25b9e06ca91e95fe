"""Rewrites of a float ``.tflite`` graph that let the LiteRT Quantizer reach more weights
(runtime worker, no TensorFlow).

Keras' ``Embedding`` converts to ``GATHER`` on a constant table, which the quantizer cannot
quantize; ``EMBEDDING_LOOKUP`` computes the same rows and takes int8 and blockwise int4
tables. Each ``GATHER`` of a constant 2-D float table along axis 0 with int32 indices
becomes::

    RESHAPE(indices, [-1]) -> EMBEDDING_LOOKUP(ids, table) -> RESHAPE(rows, SHAPE(indices) ++ [dim])

The caller checks the rewritten float model against the original before using it.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _opcode(model: Any, schema: Any, code: int, version: int = 1) -> int:
    for i, oc in enumerate(model.operatorCodes):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, 127)
    oc.version = version
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def _buffer(model: Any, schema: Any, data: np.ndarray | None) -> int:
    b = schema.BufferT()
    b.data = None if data is None else np.frombuffer(data.tobytes(), dtype=np.uint8)
    model.buffers.append(b)
    return len(model.buffers) - 1


def _tensor(model: Any, sg: Any, schema: Any, name: str, dtype: int, shape: list[int],
            data: np.ndarray | None = None) -> int:
    t = schema.TensorT()
    t.name = name.encode()
    t.type = dtype
    t.shape = np.asarray([max(d, 1) if d < 0 else d for d in shape], dtype=np.int32)
    if any(d < 0 for d in shape):
        t.shapeSignature = np.asarray(shape, dtype=np.int32)
    t.buffer = _buffer(model, schema, data)
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _op(schema: Any, opcode: int, inputs: list[int], outputs: list[int], options_type: int = 0, options: Any = None) -> Any:
    op = schema.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = np.asarray(inputs, dtype=np.int32)
    op.outputs = np.asarray(outputs, dtype=np.int32)
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    return op


def gathers_to_embedding_lookups(buf: bytes) -> tuple[bytes, int]:
    """The model with every constant-table GATHER as an EMBEDDING_LOOKUP, and how many."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.convert_bytearray_to_object(bytearray(buf))
    B, T = schema.BuiltinOperator, schema.TensorType
    gather_codes = {i for i, oc in enumerate(model.operatorCodes)
                    if max(oc.builtinCode, oc.deprecatedBuiltinCode) == B.GATHER}
    if not gather_codes:
        return buf, 0
    n = 0
    for sg in model.subgraphs:
        new_ops = []
        for op in sg.operators or []:
            if op.opcodeIndex not in gather_codes or not _rewritable(model, sg, op, schema):
                new_ops.append(op)
                continue
            new_ops.extend(_lookup_ops(model, sg, op, schema, B, T))
            n += 1
        sg.operators = new_ops
    if not n:
        return buf, 0
    return bytes(fb.convert_object_to_bytearray(model)), n


def _rewritable(model: Any, sg: Any, op: Any, schema: Any) -> bool:
    opts = op.builtinOptions
    if opts is not None and (getattr(opts, "axis", 0) != 0 or getattr(opts, "batchDims", 0) != 0):
        return False
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        return False
    params, indices = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[1]]
    data = model.buffers[params.buffer].data
    return (data is not None and len(data) > 0 and params.type == schema.TensorType.FLOAT32
            and params.shape is not None and len(params.shape) == 2 and indices.type == schema.TensorType.INT32
            and _unquantized(params))


def _unquantized(t: Any) -> bool:
    q = t.quantization
    return q is None or (q.scale is None or len(q.scale) == 0)


def _lookup_ops(model: Any, sg: Any, op: Any, schema: Any, B: Any, T: Any) -> list[Any]:
    table_i, idx_i, out_i = int(op.inputs[0]), int(op.inputs[1]), int(op.outputs[0])
    out = sg.tensors[out_i]
    dim = int(sg.tensors[table_i].shape[1])
    base = out.name.decode("utf-8", "replace")
    flat_shape = _tensor(model, sg, schema, base + "_flat_shape", T.INT32, [1], np.asarray([-1], np.int32))
    ids = _tensor(model, sg, schema, base + "_ids", T.INT32, [-1])
    rows = _tensor(model, sg, schema, base + "_lookup", T.FLOAT32, [-1, dim])
    reshape, lookup = _opcode(model, schema, B.RESHAPE), _opcode(model, schema, B.EMBEDDING_LOOKUP)
    shape_op, concat = _opcode(model, schema, B.SHAPE), _opcode(model, schema, B.CONCATENATION)
    idx_shape = _tensor(model, sg, schema, base + "_idx_shape", T.INT32, [-1])
    dim_t = _tensor(model, sg, schema, base + "_dim", T.INT32, [1], np.asarray([dim], np.int32))
    out_shape = _tensor(model, sg, schema, base + "_out_shape", T.INT32, [-1])
    shape_opts = schema.ShapeOptionsT()
    shape_opts.outType = T.INT32
    cat_opts = schema.ConcatenationOptionsT()
    cat_opts.axis = 0
    return [
        _op(schema, reshape, [idx_i, flat_shape], [ids]),
        _op(schema, lookup, [ids, table_i], [rows]),
        _op(schema, shape_op, [idx_i], [idx_shape], schema.BuiltinOptions.ShapeOptions, shape_opts),
        _op(schema, concat, [idx_shape, dim_t], [out_shape], schema.BuiltinOptions.ConcatenationOptions, cat_opts),
        _op(schema, reshape, [rows, out_shape], [out_i]),
    ]
