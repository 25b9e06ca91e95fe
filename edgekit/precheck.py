"""Checks that need no TensorFlow, run before a worker imports it.

A ``.keras`` file is a zip whose ``config.json`` names the model's inputs and their shapes:
``--inputs`` can be judged against them in milliseconds instead of after the 5-10 s it takes
to import TensorFlow and load the model. Anything this module cannot read with certainty it
leaves to the real load (it returns ``None``), so it never refuses what the model accepts.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from edgekit.specs import TensorSpec

if TYPE_CHECKING:
    import numpy as np

# Keras names unnamed inputs itself, and renames them on reload (input_layer -> input_layer_1):
# such a name in the file is not the name the loaded model has.
_AUTO_NAME = re.compile(r"^(input_layer|input|keras_tensor)(_\d+)?$")


def keras_input_specs(path: str | Path) -> tuple[TensorSpec, ...] | None:
    """The inputs a ``.keras`` file declares, or ``None`` when they cannot be read reliably."""
    p = Path(path)
    from edgekit.converters import FORMATS, format_of

    if not p.is_file() or format_of(p) is not FORMATS["keras"]:
        return None
    try:
        with zipfile.ZipFile(p) as zf:
            config = json.loads(zf.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    try:
        specs = _specs_from_config(config)
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not specs or any(_AUTO_NAME.match(s.name) for s in specs):
        return None
    return specs


def _specs_from_config(config: dict[str, Any]) -> tuple[TensorSpec, ...] | None:
    cls, cfg = config.get("class_name"), config["config"]
    layers = {layer["config"]["name"]: layer for layer in cfg["layers"] if layer.get("class_name") == "InputLayer"}
    if cls == "Functional":
        names = _input_layer_names(cfg["input_layers"])
    elif cls == "Sequential":
        names = [n for n in layers][:1]
    else:  # subclassed models: only the loaded model knows its inputs
        return None
    if not names or any(n not in layers for n in names):
        return None
    return tuple(_spec(layers[n]["config"]) for n in names)


def _input_layer_names(node: Any) -> list[str]:
    """``input_layers`` is ``[name, 0, 0]``, a list of those, or a dict of them (dict inputs)."""
    if isinstance(node, dict):
        return [n for v in node.values() for n in _input_layer_names(v)]
    if isinstance(node, list) and len(node) == 3 and isinstance(node[0], str) and isinstance(node[1], int):
        return [node[0]]
    if isinstance(node, list):
        return [n for v in node for n in _input_layer_names(v)]
    raise ValueError(f"unexpected input_layers entry {node!r}")


def _spec(layer_cfg: dict[str, Any]) -> TensorSpec:
    shape = layer_cfg.get("batch_shape") or layer_cfg.get("batch_input_shape")
    if shape is None:
        raise ValueError("input layer without a shape")
    dtype = layer_cfg.get("dtype", "float32")
    if isinstance(dtype, dict):  # a serialized DTypePolicy
        dtype = dtype.get("config", {}).get("name", "float32")
    return TensorSpec(layer_cfg["name"], tuple(None if d is None else int(d) for d in shape), str(dtype))


def check_inputs_early(kind: str, location: str, arrays: Mapping[str, "np.ndarray"]) -> None:
    """Judge --inputs against the input names and shapes a .keras file declares, before a
    worker spends seconds importing TensorFlow (the loaded model is checked again later)."""
    if kind != "keras":
        return
    declared = keras_input_specs(location)
    if declared is not None:
        from edgekit.feeds import bind

        bind(arrays, declared)
