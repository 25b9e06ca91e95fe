"""Runners, one per engine, registered in ``RUNTIMES`` (importable without TensorFlow).

``worker`` says which worker process runs it: ``tf`` (TensorFlow imported) or ``rt``
(numpy plus the runtime only). ``requires`` is the import a runner needs; a missing one
makes the runtime unavailable with the package to install.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    runner: str
    worker: str
    requires: tuple[str, ...]
    install: str
    # CPU kernel sets a quantized artifact is checked on, each as its own cell (the first is
    # what the host row runs); the runner takes the name as its ``kernels`` option
    kernel_paths: tuple[str, ...] = ()


RUNTIMES: dict[str, RuntimeInfo] = {
    r.name: r
    for r in [
        RuntimeInfo("tf-savedmodel", "edgekit.runtimes.tf_runners:SavedModelRunner", "tf", ("tensorflow",), "tensorflow-cpu"),
        RuntimeInfo("keras", "edgekit.runtimes.tf_runners:KerasFileRunner", "tf", ("keras", "tensorflow"), "keras tensorflow-cpu"),
        RuntimeInfo("keras-weights", "edgekit.runtimes.tf_runners:KerasWeightsRunner", "tf", ("keras", "tensorflow"), "keras tensorflow-cpu"),
        RuntimeInfo("litert", "edgekit.runtimes.litert:LiteRTRunner", "rt", ("ai_edge_litert|tflite_runtime",), "ai-edge-litert",
                    kernel_paths=("xnnpack", "reference")),
        RuntimeInfo("onnxruntime", "edgekit.runtimes.onnxrt:OnnxRuntimeRunner", "rt", ("onnxruntime",), "onnxruntime"),
    ]
}


def checked_kernel_paths(runtime: str, wanted: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The kernel paths of ``runtime`` a quantized artifact is checked on: those ``wanted``
    (``--kernels``), or all of them when none are named; the first is the host row's."""
    paths = RUNTIMES[runtime].kernel_paths
    return [k for k in paths if not wanted or k in wanted]


def unavailable_reason(name: str) -> str | None:
    """``None`` when the runtime's packages import, else what is missing and how to install it."""
    info = RUNTIMES[name]
    for req in info.requires:
        if not any(importlib.util.find_spec(alt) is not None for alt in req.split("|")):
            return f"{req.split('|')[0]} is not installed (pip install {info.install})"
    return None


def runner_class(name: str) -> Any:
    module, _, cls = RUNTIMES[name].runner.partition(":")
    return getattr(importlib.import_module(module), cls)
