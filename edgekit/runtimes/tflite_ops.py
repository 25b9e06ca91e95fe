"""Read a ``.tflite`` flatbuffer without TensorFlow or an interpreter (LiteRT's schema
module): operators with versions and counts, tensors with quantization, signatures."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OpUse:
    name: str
    version: int
    custom: bool
    count: int

    @property
    def is_flex(self) -> bool:
        return self.custom and self.name.startswith("Flex")


@dataclass(frozen=True)
class TensorQuant:
    name: str
    dtype: str
    shape: tuple[int, ...]
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int


@dataclass
class TFLiteDescription:
    ops: list[OpUse]
    tensors: list[TensorQuant]
    signatures: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    subgraphs: int = 1

    @property
    def quantized_tensors(self) -> list[TensorQuant]:
        return [t for t in self.tensors if t.scales]

    def to_json(self) -> dict[str, Any]:
        dtypes = Counter(t.dtype for t in self.quantized_tensors)
        return {
            "subgraphs": self.subgraphs,
            "signatures": self.signatures,
            "operators": [{"name": o.name, "version": o.version, "custom": o.custom, "count": o.count} for o in self.ops],
            "flex_ops": sorted({o.name for o in self.ops if o.is_flex}),
            "custom_ops": sorted({o.name for o in self.ops if o.custom and not o.is_flex}),
            "tensors": len(self.tensors),
            "quantized_tensors": dict(dtypes),
        }


def schema() -> Any:
    """The TFLite flatbuffer schema module (ai-edge-litert ships it; tflite-runtime does not)."""
    for name in ("ai_edge_litert.schema_py_generated", "tflite_runtime.schema_py_generated",
                 "tensorflow.lite.python.schema_py_generated"):
        try:
            import importlib

            return importlib.import_module(name)
        except ImportError:
            continue
    from edgekit.errors import MissingDependencyError

    raise MissingDependencyError(
        "reading TFLite operators needs the schema module of ai-edge-litert (pip install ai-edge-litert); "
        "tflite-runtime does not ship it"
    )


def _enum_names(enum_cls: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _root(buf: bytes) -> Any:
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (missing TFL3 identifier)")
    return schema().Model.GetRootAsModel(buf, 0)


def list_ops(buf: bytes) -> list[OpUse]:
    """Every operator code the model uses, with its version and how often it appears."""
    s = schema()
    model = _root(buf)
    names = _enum_names(s.BuiltinOperator)
    uses: Counter[int] = Counter()
    for g in range(model.SubgraphsLength()):
        sg = model.Subgraphs(g)
        for o in range(sg.OperatorsLength()):
            uses[sg.Operators(o).OpcodeIndex()] += 1
    out = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = oc.CustomCode()
        if names.get(code) == "CUSTOM" and custom is not None:
            out.append(OpUse(custom.decode("utf-8", "replace"), oc.Version(), True, uses[i]))
        else:
            out.append(OpUse(names.get(code, f"BUILTIN_{code}"), oc.Version(), False, uses[i]))
    return out


def describe(buf: bytes) -> TFLiteDescription:
    """Operators, tensors (with quantization parameters) and signatures of a model.

    Raises ``InputError`` for a damaged flatbuffer (the generated reader follows offsets
    without bounds checks and fails with struct/index errors)."""
    from edgekit.errors import InputError

    try:
        return _describe(buf)
    except ValueError as exc:
        if "TFL3" in str(exc):
            raise InputError(f"not a TFLite file: {exc}") from None
        raise InputError(f"malformed TFLite file ({type(exc).__name__}: {str(exc)[:120]})") from None
    except (IndexError, KeyError, TypeError, OverflowError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise InputError(f"malformed TFLite file ({type(exc).__name__}: {str(exc)[:120]})") from None
    except Exception as exc:  # noqa: BLE001 - struct.error and friends from the generated reader
        raise InputError(f"malformed TFLite file ({type(exc).__name__}: {str(exc)[:120]})") from None


def _describe(buf: bytes) -> TFLiteDescription:
    s = schema()
    model = _root(buf)
    types = _enum_names(s.TensorType)
    tensors = []
    for g in range(model.SubgraphsLength()):
        sg = model.Subgraphs(g)
        for t in range(sg.TensorsLength()):
            ten = sg.Tensors(t)
            q = ten.Quantization()
            scales: tuple[float, ...] = ()
            zps: tuple[int, ...] = ()
            axis = 0
            if q is not None and q.ScaleLength():
                scales = tuple(float(q.Scale(i)) for i in range(q.ScaleLength()))
                zps = tuple(int(q.ZeroPoint(i)) for i in range(q.ZeroPointLength()))
                axis = int(q.QuantizedDimension())
            tensors.append(TensorQuant((ten.Name() or b"").decode("utf-8", "replace"), types.get(ten.Type(), "?").lower(),
                                       tuple(int(ten.Shape(i)) for i in range(ten.ShapeLength())), scales, zps, axis))
    sigs: dict[str, dict[str, list[str]]] = {}
    for i in range(model.SignatureDefsLength()):
        sd = model.SignatureDefs(i)
        key = (sd.SignatureKey() or b"").decode()
        sigs[key] = {
            "inputs": [(sd.Inputs(j).Name() or b"").decode() for j in range(sd.InputsLength())],
            "outputs": [(sd.Outputs(j).Name() or b"").decode() for j in range(sd.OutputsLength())],
        }
    return TFLiteDescription(list_ops(buf), tensors, sigs, model.SubgraphsLength())
