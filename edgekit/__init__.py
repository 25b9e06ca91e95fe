"""edgekit: export a Keras model to every deployable format and prove each artifact
computes what the model computes.

This module stays light (no TensorFlow import): ``edgekit --help`` and on-device use
must not pay for it.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "convert", "ConvertOptions"]


def convert(model: str, out_dir: str, options: Any = None, **kwargs: Any) -> Any:
    """Export ``model`` to every format in ``out_dir`` and check each artifact.

    ``options`` is a ``ConvertOptions`` (or pass its fields as keywords:
    ``formats="tflite,onnx", quantize="int8", calibration="digits"``); see
    ``edgekit.pipeline.convert``. Returns a ``ConvertResult`` whose ``rows`` are the matrix
    and whose ``exit_code`` is what the CLI would return.
    """
    from edgekit.pipeline import convert as _convert

    return _convert(model, out_dir, options, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "ConvertOptions":  # imported on first use: this module stays light
        from edgekit.options import ConvertOptions

        return ConvertOptions
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
