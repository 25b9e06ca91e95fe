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
    INT4 = "int4"  # blockwise int4 weights on FULLY_CONNECTED and EMBEDDING_LOOKUP, float activations
    MIXED = "mixed"  # a precision per Keras layer (int4, int8, float): --quantize auto or --quantize-recipe
    ONNX_DYNAMIC = "onnx_dynamic"
    ONNX_STATIC = "onnx_static"
    ONNX_INT4 = "onnx_int4"  # MatMulNBits, blockwise symmetric int4 weights
# Who makes a TFLite recipe's file: the LiteRT Quantizer, from the float .tflite (the default),
# or the TFLite converter's post-training quantization (LiteRT calls it deprecated).
TFLITE_ENGINES = ("litert-quantizer", "converter")
ONNX_ENGINE = "onnxruntime"
BLOCK_SIZES = (32, 64, 128, 256)
DEFAULT_BLOCK = 32
# Precisions a layer can be given in a per-layer recipe, smallest first.
LAYER_PRECISIONS = ("int4", "int8", "float")


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
    block_size: int | None = None  # int4 only: weights per scale
    engine: str | None = None  # None: the family's default engine
    # MIXED: (Keras layer name pattern, precision) in order, the first match deciding; for
    # ``--quantize auto`` empty (the search chooses), with ``default`` for unmatched layers
    layers: tuple[tuple[str, str], ...] = ()
    default: str = "int8"
    search: bool = False  # MIXED chosen per layer to the budget (--quantize auto)
    # the engine was not chosen by the user: where the default engine's file fails its check,
    # the other engine that has the mode makes it instead (the row says why)
    fallback: bool = True

    def __post_init__(self) -> None:
        if self.family not in ("tflite", "onnx"):
            raise InputError(f"unknown quantization family {self.family!r}")
        if self.engine is None:
            object.__setattr__(self, "engine", TFLITE_ENGINES[0] if self.family == "tflite" else ONNX_ENGINE)
        allowed = TFLITE_ENGINES if self.family == "tflite" else (ONNX_ENGINE,)
        if self.engine not in allowed:
            raise InputError(f"unknown quantization engine {self.engine!r} for {self.family}; choose from {', '.join(allowed)}")
        if self.engine == "converter" and self.approach in (Approach.INT4, Approach.MIXED):
            raise InputError(f"the TFLite converter has no {self.mode} quantization: use --quantize-engine litert-quantizer")
        if self.approach in (Approach.INT4, Approach.ONNX_INT4, Approach.MIXED):
            if self.block_size is None:
                object.__setattr__(self, "block_size", DEFAULT_BLOCK)
            if self.block_size not in BLOCK_SIZES:
                raise InputError(f"int4 block size {self.block_size}: choose from {', '.join(map(str, BLOCK_SIZES))}")
        for _pattern, prec in self.layers:
            if prec not in LAYER_PRECISIONS:
                raise InputError(f"unknown layer precision {prec!r}; choose from {', '.join(LAYER_PRECISIONS)}")
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
    def engines(self) -> tuple[str, ...]:
        """The engines tried in order: the recipe's own, then, unless the user chose it, the
        TFLite converter for the modes it has."""
        if (self.family == "tflite" and self.fallback and self.engine == TFLITE_ENGINES[0]
                and self.approach in (Approach.DYNAMIC_INT8, Approach.FLOAT16, Approach.INT8, Approach.INT16X8)):
            return TFLITE_ENGINES
        return (self.engine or "",)

    @property
    def from_float(self) -> bool:
        """Made from the run's float artifact by a quantizer (not by the converter itself)."""
        return self.engine != "converter"

    @property
    def filename(self) -> str:
        suffix = {Approach.ONNX_STATIC: "qdq", Approach.MIXED: "auto" if self.search else "recipe"}.get(
            self.approach, self.mode.replace(":", "_b"))
        return f"model_{suffix}.{self.family}"

    @property
    def policy(self) -> str:
        """The tolerance policy name (see edgekit.validate)."""
        return {
            Approach.FLOAT16: "float16", Approach.DYNAMIC_INT8: "dynamic_int8", Approach.INT8: "int8",
            Approach.INT16X8: "int16x8", Approach.ONNX_DYNAMIC: "dynamic_int8", Approach.ONNX_STATIC: "int8",
            Approach.INT4: "int4", Approach.ONNX_INT4: "int4", Approach.MIXED: "mixed",
        }.get(self.approach, "float32")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["approach"] = self.approach.value
        d["layers"] = [list(x) for x in self.layers]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Recipe":
        layers = tuple(tuple(x) for x in d.get("layers") or ())
        return cls(**{**d, "approach": Approach(d["approach"]), "layers": layers})


TFLITE_MODES = {"dynamic": Approach.DYNAMIC_INT8, "float16": Approach.FLOAT16, "int8": Approach.INT8,
                "int16x8": Approach.INT16X8, "int4": Approach.INT4}
ONNX_MODES = {"dynamic": Approach.ONNX_DYNAMIC, "static": Approach.ONNX_STATIC, "int4": Approach.ONNX_INT4}


def _mode_and_block(name: str, table: dict[str, Approach], opt: str) -> tuple[str, int | None]:
    """``int4:128`` -> ("int4", 128); other modes take no suffix."""
    base, sep, block = name.partition(":")
    if not sep:
        return name, None
    if table.get(base) not in (Approach.INT4, Approach.ONNX_INT4) or not block.isdigit():
        raise InputError(f"{opt} {name!r}: only int4 takes a block size (int4:32, int4:128)")
    return base, int(block)


def parse_modes(text: str | None, family: str, io_dtype: str = "float32", calibration_method: str | None = None,
                samples: int = 200, engine: str | None = None) -> list[Recipe]:
    """``"int8,float16,int4:128"`` -> recipes; ``auto`` -> one per-layer search (TFLite)."""
    if not text:
        return []
    table = TFLITE_MODES if family == "tflite" else ONNX_MODES
    opt = "--quantize" if family == "tflite" else "--onnx-quantize"
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n.partition(":")[0] not in table and n != "auto"]
    if unknown:
        raise InputError(f"unknown {opt} mode {', '.join(map(repr, unknown))}; choose from: {', '.join(table)}, auto")
    out = []
    for n in dict.fromkeys(names):
        if n == "auto":  # one artifact: a precision per layer, chosen to the budget
            out.append(Recipe("auto", family, Approach.MIXED, "float32", None, samples,
                              engine=engine if family == "tflite" else None, search=True))
            continue
        base, block = _mode_and_block(n, table, opt)
        approach = table[base]
        io = io_dtype
        if io != "float32" and approach not in (Approach.INT8, Approach.INT16X8):
            io = "float32"  # --io-dtype applies to the integer modes; the others stay float
        if io == "int8" and approach is Approach.INT16X8:
            io = "int16"
        cm = calibration_method if approach is Approach.ONNX_STATIC else None
        if approach is Approach.ONNX_STATIC and cm is None:
            cm = "minmax"
        out.append(Recipe(n, family, approach, io, cm, samples, block,
                          engine=engine if family == "tflite" else None, fallback=engine is None))
    return out


def layer_recipe(source: str | dict[str, Any], what: str = "--quantize-recipe") -> Recipe:
    """A precision per Keras layer, by hand: a TOML file (or the same table from a
    configuration) with an optional ``default`` precision and a ``[layers]`` table of layer
    name patterns (regular expressions over the whole name, first match wins) to ``int4``,
    ``int8`` or ``float``; and optionally ``block_size``. Errors are one line naming the key::

        default = "int8"
        block_size = 32
        [layers]
        "lm_head" = "int8"
        "ffn_.*" = "int4"
        "embed.*" = "float"
    """
    import re

    if isinstance(source, str):
        from edgekit.safeparse import load_toml, read_text

        data = load_toml(read_text(source, what), f"{what} {source}")
        where = source
    else:
        data, where = source, what
    known = {"default", "layers", "block_size"}
    extra = sorted(set(data) - known)
    if extra:
        raise InputError(f"{where}: unknown key(s) {extra}; a recipe has default, block_size and [layers]")
    default = data.get("default", "int8")
    if default not in LAYER_PRECISIONS:
        raise InputError(f"{where}: default = {default!r}: choose from {', '.join(LAYER_PRECISIONS)}")
    layers = data.get("layers", {})
    if not isinstance(layers, dict) or not layers:
        raise InputError(f"{where}: [layers] must be a table of layer-name patterns to precisions, e.g. \"dense.*\" = \"int4\"")
    pairs = []
    for pattern, prec in layers.items():
        if prec not in LAYER_PRECISIONS:
            raise InputError(f"{where}: layers.{pattern} = {prec!r}: choose from {', '.join(LAYER_PRECISIONS)}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputError(f"{where}: layers: {pattern!r} is not a valid regular expression ({exc})") from None
        pairs.append((pattern, prec))
    block = data.get("block_size", DEFAULT_BLOCK)
    if isinstance(block, bool) or not isinstance(block, int) or block not in BLOCK_SIZES:
        raise InputError(f"{where}: block_size = {block!r}: choose from {', '.join(map(str, BLOCK_SIZES))}")
    return Recipe("recipe", "tflite", Approach.MIXED, block_size=block, layers=tuple(pairs), default=default)
