"""One TFLite file from several single-signature files (no TensorFlow): the subgraphs side
by side, each with its signature, and every constant buffer the files share stored once.

The converter freezes a function's weights only when it converts that function alone; two
functions converted together keep them as resource variables with nothing to initialize
them. Converting each alone and merging gives one file whose signatures share their weights.
"""
from __future__ import annotations

import hashlib
from typing import Any, Mapping, Sequence

import numpy as np

from edgekit.errors import ConversionError

# Builtin options that name another subgraph: such a graph cannot be moved without renumbering
_SUBGRAPH_OPS = {"WHILE", "IF", "CALL_ONCE", "CALL", "STABLEHLO_COMPOSITE", "STABLEHLO_WHILE", "STABLEHLO_CASE"}


def _schema() -> Any:
    from edgekit.runtimes.tflite_ops import schema

    return schema()


def _digest(buf: Any) -> str | None:
    if buf.data is None or len(buf.data) == 0:
        return None
    return hashlib.sha1(np.asarray(buf.data, dtype=np.uint8).tobytes()).hexdigest()


def _signature(s: Any, key: str, sg: Any, inputs: Sequence[str], outputs: Sequence[str]) -> Any:
    if len(inputs) != len(sg.inputs) or len(outputs) != len(sg.outputs):
        raise ConversionError(f"signature {key!r}: {len(sg.inputs)} inputs and {len(sg.outputs)} outputs in the graph, "
                              f"{len(inputs)} and {len(outputs)} named")

    def tmap(name: str, index: int) -> Any:
        t = s.TensorMapT()
        t.name, t.tensorIndex = name, int(index)
        return t

    sd = s.SignatureDefT()
    sd.signatureKey, sd.subgraphIndex = key, 0
    sd.inputs = [tmap(n, i) for n, i in zip(inputs, sg.inputs)]
    sd.outputs = [tmap(n, i) for n, i in zip(outputs, sg.outputs)]
    return sd


def _const_ints(model: Any, sg: Any, index: int) -> list[int] | None:
    t = sg.tensors[index]
    b = model.buffers[t.buffer]
    if b.data is None or len(b.data) == 0:
        return None
    dtype = {2: np.int32, 4: np.int64}.get(t.type)  # TensorType INT32, INT64
    return None if dtype is None else [int(x) for x in np.frombuffer(np.asarray(b.data, np.uint8).tobytes(), dtype)]


def _selection(model: Any, sg: Any, op: Any) -> list[Any] | None:
    """A STRIDED_SLICE as one entry per axis of its input: None (the whole axis) or an index
    (the axis is taken at it and dropped); None where it is anything else."""
    o = op.builtinOptions
    if o is None or o.ellipsisMask or o.newAxisMask or getattr(o, "offset", False):
        return None
    shape = [int(d) for d in sg.tensors[op.inputs[0]].shape]
    begin, end, strides = (_const_ints(model, sg, op.inputs[k]) for k in (1, 2, 3))
    if begin is None or end is None or strides is None:
        return None
    sel: list[Any] = []
    for ax, dim in enumerate(shape):
        if ax >= len(begin):
            sel.append(None)
            continue
        b, e, st = begin[ax], end[ax], strides[ax]
        if o.shrinkAxisMask >> ax & 1:
            sel.append(b + dim if b < 0 else b)
        elif st == 1 and (o.beginMask >> ax & 1 or b == 0) and (o.endMask >> ax & 1 or e >= dim):
            sel.append(None)
        else:
            return None
    return sel


def fold_pack_slices(model: Any, sg: Any, op_names: Mapping[int, str]) -> int:
    """Take out ``PACK`` -> ``STRIDED_SLICE`` round trips until none is left (one taken out
    can expose another); returns the slices folded. See ``_fold_once``."""
    total = 0
    while True:
        n = _fold_once(model, sg, op_names)
        if not n:
            return total
        total += n


def _fold_once(model: Any, sg: Any, op_names: Mapping[int, str]) -> int:
    """Take out ``PACK`` -> ``STRIDED_SLICE`` round trips: a slice that takes one packed input
    back whole (keras-hub's cache is stacked over layers and over key/value, then sliced apart
    in every layer) reads that input instead, and packs nothing uses any more go. Each round
    trip copies the whole cache once per step. Returns the slices folded."""
    def name(op: Any) -> str:
        c = model.operatorCodes[op.opcodeIndex]
        return op_names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM")

    ops = list(sg.operators or [])
    producer = {int(t): op for op in ops for t in op.outputs}
    outputs = {int(t) for t in sg.outputs}
    replace: dict[int, int] = {}
    for op in ops:
        if name(op) != "STRIDED_SLICE":
            continue
        sel = _selection(model, sg, op)
        if sel is None:
            continue
        t = int(op.inputs[0])
        while True:
            p = producer.get(t)
            if p is None or name(p) != "PACK" or p.builtinOptions is None:
                break
            rank = len(sg.tensors[int(p.outputs[0])].shape)
            axis = p.builtinOptions.axis % rank
            if axis >= len(sel) or sel[axis] is None:
                break
            t = int(p.inputs[sel[axis]])
            sel = sel[:axis] + sel[axis + 1:]
        out = int(op.outputs[0])
        if t == int(op.inputs[0]) or not all(x is None for x in sel):
            continue
        if out in outputs and (t in {int(i) for i in sg.inputs} or t in outputs or t in replace.values()):
            continue  # a graph output must stay a tensor of its own
        replace[out] = t
    if not replace:
        return 0
    for op in ops:
        op.inputs = np.asarray([replace.get(int(i), int(i)) for i in op.inputs], dtype=np.int32)
    sg.outputs = np.asarray([replace.get(int(i), int(i)) for i in sg.outputs], dtype=np.int32)
    outputs = {int(t) for t in sg.outputs}
    while True:  # ops whose outputs nothing reads any more
        used = {int(i) for op in ops for i in op.inputs} | outputs
        dead = [op for op in ops if name(op) in ("PACK", "STRIDED_SLICE") and not any(int(t) in used for t in op.outputs)]
        if not dead:
            break
        ops = [op for op in ops if op not in dead]
    sg.operators = ops
    return len(replace)


def merge_signatures(parts: Sequence[tuple[str, bytes, Sequence[str], Sequence[str]]],
                     metadata: Mapping[str, bytes] | None = None) -> bytes:
    """``parts``: (signature key, single-subgraph .tflite bytes, input names, output names in
    the graph's order). ``metadata``: name -> bytes stored as model metadata."""
    import flatbuffers

    s = _schema()
    from edgekit.runtimes.tflite_ops import _enum_names

    op_names = _enum_names(s.BuiltinOperator)
    out: Any = None
    seen: dict[str, int] = {}
    for key, buf, ins, outs in parts:
        m = s.ModelT.InitFromPackedBuf(bytearray(buf), 0)
        if len(m.subgraphs) != 1:
            raise ConversionError(f"signature {key!r}: {len(m.subgraphs)} subgraphs, expected 1")
        sg = m.subgraphs[0]
        codes = [op_names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM") for c in m.operatorCodes]
        nested = sorted({codes[op.opcodeIndex] for op in sg.operators or []} & _SUBGRAPH_OPS)
        if nested:
            raise ConversionError(f"signature {key!r} calls other subgraphs ({', '.join(nested)}): not mergeable")
        fold_pack_slices(m, sg, op_names)
        sd = _signature(s, key, sg, ins, outs)
        for t in sg.tensors:  # tensor names unique in the file (the LiteRT Quantizer requires it)
            name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
            t.name = f"{key}/{name}".encode()
        if out is None:
            out = m
            out.signatureDefs = [sd]
            for i, b in enumerate(out.buffers):
                d = _digest(b)
                if d is not None:
                    seen.setdefault(d, i)
            continue
        opmap = {}
        for j, oc in enumerate(m.operatorCodes):
            ident = (max(oc.builtinCode, oc.deprecatedBuiltinCode), oc.version, oc.customCode)
            for r, o2 in enumerate(out.operatorCodes):
                if (max(o2.builtinCode, o2.deprecatedBuiltinCode), o2.version, o2.customCode) == ident:
                    opmap[j] = r
                    break
            else:
                out.operatorCodes.append(oc)
                opmap[j] = len(out.operatorCodes) - 1
        bufmap = {}
        for j, b in enumerate(m.buffers):
            d = _digest(b)
            if d is not None and d in seen:
                bufmap[j] = seen[d]
                continue
            out.buffers.append(b)
            bufmap[j] = len(out.buffers) - 1
            if d is not None:
                seen[d] = bufmap[j]
        for t in sg.tensors:
            t.buffer = bufmap[t.buffer]
        for op in sg.operators or []:
            op.opcodeIndex = opmap[op.opcodeIndex]
        sd.subgraphIndex = len(out.subgraphs)
        out.subgraphs.append(sg)
        out.signatureDefs.append(sd)
    if out is None:
        raise ConversionError("no signature to merge")
    for name, data in (metadata or {}).items():
        b = s.BufferT()
        b.data = np.frombuffer(bytes(data), dtype=np.uint8)
        out.buffers.append(b)
        md = s.MetadataT()
        md.name, md.buffer = name, len(out.buffers) - 1
        out.metadata = [*(out.metadata or []), md]
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(out.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_metadata(buf: Any, name: str) -> bytes | None:
    """The bytes of the model metadata entry ``name`` (``buf``: the file's bytes or a
    memory map of it), or None."""
    s = _schema()
    m = s.Model.GetRootAsModel(buf, 0)
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if md.Name() is not None and md.Name().decode() == name:
            b = m.Buffers(md.Buffer())
            return bytes(b.DataAsNumpy().tobytes()) if b.DataLength() else None
    return None
