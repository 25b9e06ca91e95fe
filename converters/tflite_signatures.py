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


def read_metadata(buf: bytes, name: str) -> bytes | None:
    """The bytes of the model metadata entry ``name``, or None."""
    s = _schema()
    m = s.Model.GetRootAsModel(buf, 0)
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if md.Name() is not None and md.Name().decode() == name:
            b = m.Buffers(md.Buffer())
            return bytes(b.DataAsNumpy().tobytes()) if b.DataLength() else None
    return None
