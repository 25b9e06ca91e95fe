"""Which optional dependency sets are installed, checked without importing them.

The plain ``pip install edgekit`` carries only what runs an artifact (numpy, click, LiteRT);
loading and converting Keras models is the ``convert`` extra. A command that needs it says
so in one line before it starts a worker, instead of failing deep inside TensorFlow's import.
"""
from __future__ import annotations

import importlib.util

from edgekit.errors import MissingDependencyError

# Top-level modules of the `convert` extra in pyproject.toml (import names, not package names).
CONVERT_MODULES = ("tensorflow", "keras", "h5py", "onnx", "onnxruntime", "tf2onnx", "sklearn", "matplotlib")


def missing_modules(modules: tuple[str, ...] = CONVERT_MODULES) -> list[str]:
    """The modules that are not importable here; ``find_spec`` locates without importing."""
    missing = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):  # a broken or half-removed install
            missing.append(name)
    return missing


def require_converter(command: str) -> None:
    """Raise a one-line ``MissingDependencyError`` when the ``convert`` extra is absent."""
    missing = missing_modules()
    if missing:
        raise MissingDependencyError(
            f'edgekit {command} needs the converter dependencies: pip install "edgekit[convert]" '
            f"(not installed: {', '.join(missing)})"
        )
