"""The settings of one conversion run, in one frozen object.

``ConvertOptions`` is built once, by the CLI from its flags or by ``edgekit check`` from a
``[models.NAME]`` table, and passed unchanged to ``edgekit.pipeline.convert``. The rules on
which combinations are allowed live here only (``problems``); each surface words the hint
in its own terms (a flag, or a configuration key) through ``Surface``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from edgekit import errors
from edgekit.converters import DEFAULT_OPSET, FORMATS


def _names(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """``"int8, float16"`` or ``["int8", "float16"]`` -> ``("int8", "float16")``."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(s.strip() for s in items if s and s.strip())


@dataclass(frozen=True)
class ConvertOptions:
    """Everything of a run except the model, the output directory and in-memory arrays."""

    formats: tuple[str, ...] = None  # type: ignore[assignment]  # None: every format registered when built
    quantize: tuple[str, ...] = ()  # TFLite modes, or ("auto",)
    onnx_quantize: tuple[str, ...] = ()
    quantize_engine: str | None = None  # TFLite: litert-quantizer (default) or converter
    quantize_recipe: str | Mapping[str, Any] | None = None  # a TOML file (or its table): precision per layer pattern
    kernels: tuple[str, ...] = ()  # CPU kernel sets quantized artifacts are checked on (empty: all)
    io_dtype: str = "float32"
    calibration: str | None = None
    calibration_samples: int = 200
    calibration_method: str | None = None
    eval_data: str | None = None
    max_accuracy_drop: float | None = None
    inputs: str | None = None  # an .npz/.npy of check inputs
    batch_size: int = 2
    seed: int = 0
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    opset: int = DEFAULT_OPSET
    atol: Mapping[str | None, float] = field(default_factory=dict)
    rtol: Mapping[str | None, float] = field(default_factory=dict)
    unsafe: bool = False
    custom_objects: str | None = None
    timeout: float = 600.0
    repeats: int = 5
    target_runtime: str | None = None
    devices: tuple[str, ...] | None = None  # None: the host only
    force: bool = False
    truth: bool = True
    allow_nonfinite_inputs: bool = False
    # generative decoders (edgekit.generation): "causal-lm" exports a keras-hub backbone as its
    # causal LM; a causal LM gets generative artifacts unless generative is False
    task: str | None = None
    max_cache_length: int | None = None
    generative: bool = True
    tokenizer: str | None = None  # keras-hub tokenizer assets copied beside the artifacts (edgekit.text_tokenizer)

    def __post_init__(self) -> None:
        # None: every format registered now (not at import: formats registered later count).
        # Registry order always: a format converted from an earlier one's artifact comes after it.
        given = list(FORMATS) if self.formats is None else list(self.formats)
        object.__setattr__(self, "formats", tuple([x for x in FORMATS if x in given] + [x for x in given if x not in FORMATS]))

    @classmethod
    def of(cls, **settings: Any) -> "ConvertOptions":
        """From the loose forms callers use: comma-separated strings or lists for the lists,
        None for "the default"."""
        kw = {k: v for k, v in settings.items() if v is not None}
        if "formats" in kw:
            from edgekit.converters import parse_formats

            f = kw["formats"]
            kw["formats"] = tuple(parse_formats(f) if isinstance(f, str) else f)
        for key in ("quantize", "onnx_quantize", "devices", "kernels"):
            if key in kw:
                kw[key] = _names(kw[key]) or (None if key == "devices" else ())
        if "shapes" in kw:
            kw["shapes"] = {k: tuple(v) for k, v in kw["shapes"].items()}
        for key in ("atol", "rtol"):
            if key in kw:
                kw[key] = dict(kw[key])
        unknown = set(kw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown conversion setting(s): {', '.join(sorted(unknown))}")
        return cls(**kw)

    def replace(self, **changes: Any) -> "ConvertOptions":
        return dataclasses.replace(self, **changes)

    def recipes(self) -> list[Any]:
        """The quantized artifacts asked for, TFLite first (``InputError`` on an unknown mode)."""
        from edgekit.quantize.recipes import parse_modes

        from edgekit.quantize.recipes import layer_recipe

        hand = [layer_recipe(self.quantize_recipe)] if self.quantize_recipe else []
        return (parse_modes(",".join(self.quantize), "tflite", self.io_dtype, None, self.calibration_samples,
                            self.quantize_engine) + hand
                + parse_modes(",".join(self.onnx_quantize), "onnx", self.io_dtype, self.calibration_method,
                              self.calibration_samples))

    def labels(self) -> list[str]:
        """The artifact labels this run produces (``tflite``, ``tflite:int8``, ...)."""
        q = list(self.quantize) + (["recipe"] if self.quantize_recipe else [])
        return list(self.formats) + [f"tflite:{m}" for m in q] + [f"onnx:{m}" for m in self.onnx_quantize]

    def problems(self, say: "Surface") -> Iterator[tuple[str, str]]:
        """``(key, message)`` for every setting that cannot work as given, worded for ``say``."""
        from edgekit.quantize.recipes import ONNX_MODES, TFLITE_MODES, Approach

        if not (isinstance(self.timeout, (int, float)) and 0 < self.timeout < float("inf")):  # nan fails too
            yield "timeout", f"{say.name('timeout')} {self.timeout}: expected a number of seconds > 0"
        for f in self.formats:
            if f not in FORMATS:
                yield "formats", f"unknown format {f!r}; choose from: {', '.join(FORMATS)}"
        tfl = [q for q in self.quantize if q != "auto"]
        needs_cal = [("tflite", q) for q in tfl if TFLITE_MODES.get(q) in (Approach.INT8, Approach.INT16X8)]
        needs_cal += [("onnx", q) for q in self.onnx_quantize if ONNX_MODES.get(q) is Approach.ONNX_STATIC]
        if needs_cal and not self.calibration:
            yield "", say.needs_calibration(needs_cal)
        if self.max_accuracy_drop is not None and not self.eval_data:
            yield "max_accuracy_drop", (f"{say.subject('max_accuracy_drop')}needs labelled data: "
                                        f"{say.give('eval_data', 'data.npz', 'digits')}")
        if self.max_accuracy_drop is not None and not (self.quantize or self.onnx_quantize or self.quantize_recipe):
            yield "max_accuracy_drop", (f"{say.subject('max_accuracy_drop')}applies to quantized artifacts, and this "
                                        f"model has none (add {say.setting('quantize', '...')} or "
                                        f"{say.setting('onnx_quantize', '...')})")
        from edgekit.quantize.recipes import TFLITE_ENGINES

        if self.quantize_engine is not None and self.quantize_engine not in TFLITE_ENGINES:
            yield "quantize_engine", (f"{say.subject('quantize_engine')}{self.quantize_engine!r}: choose from "
                                      f"{', '.join(TFLITE_ENGINES)}")
        from edgekit.runtimes import RUNTIMES

        paths = {k for r in RUNTIMES.values() for k in r.kernel_paths}
        for k in self.kernels:
            if k not in paths:
                yield "kernels", f"{say.subject('kernels')}unknown kernel path {k!r}; choose from {', '.join(sorted(paths))}"
        if "auto" in self.onnx_quantize:
            yield "onnx_quantize", (f"{say.subject('onnx_quantize')}auto (per layer) is made for TFLite only so far: "
                                    f"choose ONNX modes from dynamic, static, int4")
        if self.io_dtype != "float32" and not any(q in ("int8", "int16x8") for q in self.quantize):
            yield "io_dtype", (f"{say.subject('io_dtype')}integer I/O applies to {say.setting('quantize', 'int8')} "
                               f"or {say.setting('quantize', 'int16x8')}")
        if not self.labels():
            yield "formats", "no artifacts: list at least one format or quantization mode"
        if self.task is not None and self.task not in TASKS:
            yield "task", f"{say.subject('task')}{self.task!r}: choose from {', '.join(TASKS)}"
        if self.max_cache_length is not None and not (isinstance(self.max_cache_length, int) and self.max_cache_length >= 2):
            yield "max_cache_length", f"{say.subject('max_cache_length')}{self.max_cache_length!r}: expected an integer >= 2"
        if self.calibration_method and "static" not in self.onnx_quantize:
            yield "calibration_method", (f"{say.subject('calibration_method')}applies to "
                                         f"{say.setting('onnx_quantize', 'static')} only")

    def check(self, say: "Surface | None" = None) -> "ConvertOptions":
        """Raise ``InputError`` on the first problem; return self."""
        for _key, msg in self.problems(say or CLI):
            raise errors.InputError(msg)
        self.recipes()  # unknown quantization modes
        return self

    def to_json(self) -> dict[str, Any]:
        """Everything that decides the artifacts and their comparison (for cache keys)."""
        d = dataclasses.asdict(self)
        d["atol"] = {str(k): v for k, v in self.atol.items()}
        d["rtol"] = {str(k): v for k, v in self.rtol.items()}
        d["shapes"] = {k: list(v) for k, v in self.shapes.items()}
        return d


TASKS = ("causal-lm",)


class Surface:
    """How a surface names a setting in its messages: the CLI's flags."""

    def name(self, key: str) -> str:
        return "--" + {"formats": "to"}.get(key, key).replace("_", "-")

    def subject(self, key: str) -> str:
        """How a message about ``key`` starts (a configuration error already names its key)."""
        return self.name(key) + " "

    def setting(self, key: str, value: str) -> str:
        return f"{self.name(key)} {value}"

    def give(self, key: str, example: str, special: str) -> str:
        return f"pass {self.name(key)} {example} (or {special})"

    def needs_calibration(self, modes: list[tuple[str, str]]) -> str:
        return (f"{', '.join(f'{fam} {m}' for fam, m in modes)} need(s) calibration data: pass --calibration "
                "data.npz|data.npy|data.csv|images/|digits (or --calibration random, whose results are not meaningful)")


class ConfigSurface(Surface):
    """... and a configuration file's keys."""

    def name(self, key: str) -> str:
        return key

    def subject(self, key: str) -> str:
        return ""

    def setting(self, key: str, value: str) -> str:
        return f"{key} = [{value}]" if value == "..." else f'{key} = ["{value}"]'

    def give(self, key: str, example: str, special: str) -> str:
        return f'add {key} = "{example}" (or "{special}")'

    def needs_calibration(self, modes: list[tuple[str, str]]) -> str:
        return (f"quantization {', '.join(m for _, m in modes)} needs calibration data: add calibration = \"data.npz\" "
                "(or \"digits\", or \"random\", whose results are not meaningful)")


CLI, CONFIG = Surface(), ConfigSurface()
