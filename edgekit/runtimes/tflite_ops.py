"""Read the operators of a ``.tflite`` flatbuffer without TensorFlow (LiteRT's schema module)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class OpUse:
    name: str
    version: int
    custom: bool
    count: int

    @property
    def is_flex(self) -> bool:
        return self.custom and self.name.startswith("Flex")


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema  # type: ignore[import-not-found]
    except ImportError:
        try:
            from tflite_runtime import schema_py_generated as schema  # type: ignore[import-not-found,no-redef]
        except ImportError:
            from tensorflow.lite.python import schema_py_generated as schema  # type: ignore[no-redef]
    return schema


def list_ops(buf: bytes) -> list[OpUse]:
    """Every operator code the model uses, with its version and how often it appears."""
    schema = _schema()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (missing TFL3 identifier)")
    model = schema.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
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
