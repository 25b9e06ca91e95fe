"""What a quantized artifact is: a frozen ``Recipe`` per mode, impossible combinations
rejected when it is made (numpy-free, TensorFlow-free)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from edgekit.errors import InputError


class Approach(str, Enum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC_INT8 = "dynamic_int8"
    INT8 = "int8"
    INT16X8 = "int16x8"
    ONNX_DYNAMIC = "onnx_dynamic"
    ONNX_STATIC = "onnx_static"


CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Recipe:
    """One quantized artifact. ``io_dtype`` is the model's input/output type: float32
    (quantize inside the model) or the integer type of the mode (int8, or int16 for 16x8)."""

    mode: str  # user-facing name: dynamic, float16, int8, int16x8 (tflite); dynamic, static (onnx)
    family: str  # tflite | onnx
    approach: Approach
    io_dtype: str = "float32"
    calibration_method: str | None = None  # onnx static only
    calibration_samples: int = 200

    def __post_init__(self) -> None:
        if self.family not in ("tflite", "onnx"):
            raise InputError(f"unknown quantization family {self.family!r}")
        int_io = {Approach.INT8: "int8", Approach.INT16X8: "int16"}
        if self.io_dtype != "float32" and int_io.get(self.approach) != self.io_dtype:
            allowed = int_io.get(self.approach)
            raise InputError(
                f"--io-dtype {self.io_dtype} does not fit mode {self.mode}: "
                + (f"use float32 or {allowed}" if allowed else "this mode keeps float32 inputs and outputs")
            )
        if self.calibration_method is not None:
            if self.approach is not Approach.ONNX_STATIC:
                raise InputError(f"a calibration method applies to ONNX static quantization, not {self.family} {self.mode}")
            if self.calibration_method not in CALIBRATION_METHODS:
                raise InputError(f"unknown calibration method {self.calibration_method!r}; choose from {', '.join(CALIBRATION_METHODS)}")
        if self.calibration_samples < 1:
            raise InputError(f"--calibration-samples must be at least 1, got {self.calibration_samples}")

    @property
    def needs_calibration(self) -> bool:
        return self.approach in (Approach.INT8, Approach.INT16X8, Approach.ONNX_STATIC)

    @property
    def filename(self) -> str:
        suffix = "qdq" if self.approach is Approach.ONNX_STATIC else self.mode
        return f"model_{suffix}.{self.family}"

    @property
    def policy(self) -> str:
        """The tolerance policy name (see edgekit.validate)."""
        return {
            Approach.FLOAT16: "float16", Approach.DYNAMIC_INT8: "dynamic_int8", Approach.INT8: "int8",
            Approach.INT16X8: "int16x8", Approach.ONNX_DYNAMIC: "dynamic_int8", Approach.ONNX_STATIC: "int8",
        }.get(self.approach, "float32")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["approach"] = self.approach.value
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Recipe":
        return cls(**{**d, "approach": Approach(d["approach"])})


TFLITE_MODES = {"dynamic": Approach.DYNAMIC_INT8, "float16": Approach.FLOAT16, "int8": Approach.INT8,
                "int16x8": Approach.INT16X8}
ONNX_MODES = {"dynamic": Approach.ONNX_DYNAMIC, "static": Approach.ONNX_STATIC}
# Smallest first: the order `--quantize auto` tries them in.
AUTO_ORDER = ("int8", "int16x8", "dynamic", "float16")
AUTO_FAMILY = "tflite"  # the recipes --quantize auto chooses among


def parse_modes(text: str | None, family: str, io_dtype: str = "float32", calibration_method: str | None = None,
                samples: int = 200) -> list[Recipe]:
    """``"int8,float16"`` -> recipes; ``auto`` -> every TFLite mode in ``AUTO_ORDER``."""
    if not text:
        return []
    table = TFLITE_MODES if family == "tflite" else ONNX_MODES
    names = [t.strip() for t in text.split(",") if t.strip()]
    if family == "tflite" and names == ["auto"]:
        names = list(AUTO_ORDER)
    unknown = [n for n in names if n not in table]
    if unknown:
        opt = "--quantize" if family == "tflite" else "--onnx-quantize"
        raise InputError(f"unknown {opt} mode {', '.join(map(repr, unknown))}; choose from: {', '.join(table)}"
                         + (", auto" if family == "tflite" else ""))
    out = []
    for n in dict.fromkeys(names):
        approach = table[n]
        io = io_dtype
        if io != "float32" and approach not in (Approach.INT8, Approach.INT16X8):
            io = "float32"  # --io-dtype applies to the integer modes; the others stay float
        if io == "int8" and approach is Approach.INT16X8:
            io = "int16"
        cm = calibration_method if approach is Approach.ONNX_STATIC else None
        if approach is Approach.ONNX_STATIC and cm is None:
            cm = "minmax"
        out.append(Recipe(n, family, approach, io, cm, samples))
    return out
