"""edgekit: export a Keras model to every deployable format and prove each artifact
computes what the model computes.

This module stays light (no TensorFlow import): ``edgekit --help`` and on-device use
must not pay for it.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "convert"]


def convert(model: str, out_dir: str, **kwargs: Any) -> Any:
    """Export ``model`` to every format in ``out_dir`` and check each artifact.

    See ``edgekit.pipeline.convert`` for the arguments; returns a ``ConvertResult`` whose
    ``rows`` are the matrix and whose ``exit_code`` is what the CLI would return.
    """
    from edgekit.pipeline import convert as _convert

    return _convert(model, out_dir, **kwargs)
