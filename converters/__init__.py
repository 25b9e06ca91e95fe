"""Exporters, one module per format, registered in ``FORMATS`` (importable without TensorFlow).

Each entry names its exporter class lazily (``module:Class``), the file or directory it
writes, the runtime that checks it and the tolerance policy it is checked under.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FormatInfo:
    name: str
    filename: str
    exporter: str
    runtime: str
    policy: str
    description: str
    needs_keras_architecture: bool = False
    extra_files: tuple[str, ...] = ()
    # Export paths tried in order until one yields an artifact that passes its check.
    paths: tuple[str, ...] = ("",)
    # Identity: how a file of this format is recognised (``format_of``): name endings, and
    # the bytes at an offset of its content (None: the name decides).
    suffixes: tuple[str, ...] = ()
    magic: tuple[int, bytes] | None = None
    directory_marker: str | None = None  # a directory holding this file is of this format
    # What an export of this format takes from earlier jobs of the run: exporter option ->
    # the format whose float artifact, once it passed its check, is handed over.
    converts_from: tuple[tuple[str, str], ...] = ()
    # Quantized artifacts of this format made in the runtime worker from the float artifact
    # (``module:function``); None: the exporter quantizes. A recipe whose engine is the
    # exporter itself (TFLite's converter) goes to the exporter all the same.
    quantizer: str | None = None
    # A file this format cannot write or read back for a model means "not applicable", not a
    # failure (legacy HDF5 cannot hold every Keras 3 model): the row's reason, {error} being
    # the exporter's or runtime's message. None: such a failure is an error.
    may_not_hold: str | None = None
    # Operator versions are checked against --target-runtime.
    op_versions: bool = False

    def named(self, name: str) -> bool:
        """Whether a file name ends in one of this format's suffixes."""
        return name.lower().endswith(self.suffixes) if self.suffixes else False

    def matches(self, path: Path) -> bool:
        """Whether ``path`` could be of this format: a directory holding its marker; a file
        carrying its magic bytes (required where the format has them: a ``.tflite`` without
        ``TFL3`` is no TFLite file), else a file with its name ending."""
        if self.directory_marker is not None:
            return path.is_dir() and (path / self.directory_marker).is_file()
        if not path.is_file():
            return False
        if self.magic is not None:
            at, want = self.magic
            try:
                with open(path, "rb") as fh:
                    head = fh.read(at + len(want))
            except OSError:  # unreadable: not recognisably anything
                return False
            return head[at:] == want
        return self.named(path.name)


FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in [
        FormatInfo("saved_model", "saved_model", "edgekit.converters.saved_model:SavedModelExporter",
                   "tf-savedmodel", "exact", "SavedModel for TF Serving (serving_default, Keras names)",
                   directory_marker="saved_model.pb"),
        FormatInfo("keras", "model.keras", "edgekit.converters.keras_v3:KerasV3Exporter",
                   "keras", "exact", "Keras v3 archive", needs_keras_architecture=True, suffixes=(".keras",)),
        FormatInfo("h5", "model.h5", "edgekit.converters.h5:H5Exporter",
                   "keras", "exact", "legacy HDF5 model", needs_keras_architecture=True, suffixes=(".h5", ".hdf5"),
                   may_not_hold="legacy HDF5 cannot hold this model ({error}); ship model.keras"),
        FormatInfo("weights", "model.weights.h5", "edgekit.converters.weights:WeightsExporter",
                   "keras-weights", "exact", "weights only + architecture JSON",
                   needs_keras_architecture=True, extra_files=("model.json",), suffixes=(".weights.h5",)),
        FormatInfo("tflite", "model.tflite", "edgekit.converters.tflite:TFLiteExporter",
                   "litert", "float32", "TFLite float32, builtin ops only", suffixes=(".tflite",), magic=(4, b"TFL3"),
                   converts_from=(("saved_model_dir", "saved_model"),), op_versions=True,
                   quantizer="edgekit.quantize.litert_quant:quantize"),
        FormatInfo("onnx", "model.onnx", "edgekit.converters.onnx:OnnxExporter",
                   "onnxruntime", "float32", "ONNX, dynamic batch named 'batch'",
                   paths=("tf2onnx", "tf2onnx-from-tflite", "keras-export", "tf2onnx-fixed-batch"),
                   suffixes=(".onnx",), magic=(0, b"\x08"),
                   converts_from=(("tflite_file", "tflite"),), quantizer="edgekit.quantize.onnx_quant:quantize"),
    ]
}

DEFAULT_OPSET = 17


def format_of(path: str | Path, *, trust_name: bool = False) -> FormatInfo | None:
    """The registered format of a file or directory, or None: content first (a format whose
    magic bytes the file carries, the one its name also names where several do), then the
    name (the longest suffix: ``.weights.h5`` before ``.h5``) among formats without magic.

    ``trust_name``: a file whose content matches nothing is taken for what its name says
    even where that format has magic bytes (a damaged ``model.tflite``), so that its runtime
    reports what is wrong with it; without it such a file is of no format."""
    p = Path(path)
    found = [f for f in FORMATS.values() if f.matches(p)]
    by_content = [f for f in found if f.magic is not None]
    if trust_name and not by_content and p.is_file():
        found = [f for f in FORMATS.values() if f.named(p.name)]
    named = sorted((f for f in found if f.named(p.name)), key=lambda f: -max(len(x) for x in f.suffixes))
    if by_content:
        return next((f for f in named if f in by_content), by_content[0])
    return named[0] if named else next(iter(found), None)


def get_exporter(name: str) -> Any:
    """Instantiate the exporter registered for ``name`` (imports its module)."""
    module, _, cls = FORMATS[name].exporter.partition(":")
    return getattr(importlib.import_module(module), cls)()


def parse_formats(text: str | None) -> list[str]:
    """``"tflite,onnx"`` -> ``["tflite", "onnx"]`` in registry order; ``None`` -> all."""
    from edgekit.errors import InputError

    if text is None or text.strip() in ("", "all"):
        return list(FORMATS)
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in FORMATS]
    if unknown:
        raise InputError(f"unknown format {', '.join(map(repr, unknown))} in --to; choose from: {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in wanted]


# ---------------------------------------------------------------------------------------------
# More formats: a module that calls ``register`` when imported, named by an entry point of
# the group ``edgekit.formats`` (an installed package) or in EDGEKIT_FORMAT_MODULES
# (comma-separated module names). Loaded in every process, workers included, so a registered
# format is exported, run, compared, listed in --help, the matrix and the manifest like the
# built-in ones. docs/ARCHITECTURE.md walks through adding one.

FORMAT_MODULES_ENV = "EDGEKIT_FORMAT_MODULES"


def register(fmt: FormatInfo, runtime: Any = None) -> None:
    """Add ``fmt`` to the registry (after the built-in formats), and the runtime that checks
    it (an ``edgekit.runtimes.RuntimeInfo``) when it is a new one."""
    if fmt.name in FORMATS and FORMATS[fmt.name] != fmt:
        raise ValueError(f"format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    if runtime is not None:
        from edgekit.runtimes import RUNTIMES

        RUNTIMES[runtime.name] = runtime


def _load_format_modules() -> None:
    import os
    import sys
    from importlib.metadata import entry_points

    names = [ep.value.split(":")[0] for ep in entry_points(group="edgekit.formats")]
    names += [n.strip() for n in os.environ.get(FORMAT_MODULES_ENV, "").split(",") if n.strip()]
    for name in dict.fromkeys(names):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the tool down
            print(f"edgekit: format module {name!r} could not be loaded ({type(exc).__name__}: {exc}); "
                  "its formats are not available", file=sys.stderr)


_load_format_modules()
