"""What each model input expects, read from the layers that consume it (TensorFlow worker).

Token ids must span the vocabulary of the embedding they feed (keras-hub's
``ReversibleEmbedding``/``TokenAndPositionEmbedding`` included, which are found by their
``input_dim``/``vocabulary_size``, not by class), padding masks must be masks, segment ids
must stay within their embedding, and images behind a ``Rescaling`` layer are 0-255 pixels.
The result is a ``role`` and a range per input; ``edgekit.feeds`` draws the check inputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.specs import TensorSpec

# Layers that pass a tensor on unchanged in meaning: the search for an embedding walks through.
_TRANSPARENT = {"Cast", "Reshape", "Flatten", "Identity", "InputLayer", "Masking", "Squeeze", "ExpandDims",
                "Functional", "Sequential"}
_MAX_HOPS = 4
_LENGTH_KEYS = ("max_sequence_length", "max_decoder_sequence_length", "max_encoder_sequence_length")


def _consumers(model: Any) -> dict[int, list[Any]]:
    """id(symbolic tensor) -> the operations that take it as an input."""
    out: dict[int, list[Any]] = {}
    for op in getattr(model, "operations", []):
        for node in getattr(op, "_inbound_nodes", []):
            for t in getattr(node, "input_tensors", []):
                out.setdefault(id(t), []).append((op, node))
    return out


def _vocab(op: Any) -> int | None:
    for attr in ("input_dim", "vocabulary_size", "vocab_size"):
        v = getattr(op, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def _scale_range(op: Any) -> tuple[float, float] | None:
    """Inputs a Rescaling layer maps onto [0, 1] (offset >= 0) or [-1, 1] (offset < 0)."""
    scale = np.asarray(getattr(op, "scale", 1.0), dtype=np.float64).ravel()
    offset = np.asarray(getattr(op, "offset", 0.0), dtype=np.float64).ravel()
    if not scale.size or np.any(scale <= 0):
        return None
    lo, hi = (0.0, 1.0) if float(offset.min(initial=0.0)) >= 0 else (-1.0, 1.0)
    a, b = (lo - offset) / scale, (hi - offset) / scale
    return float(np.round(a.min(), 6)), float(np.round(b.max(), 6))


def _normalization_range(op: Any) -> tuple[float, float] | None:
    mean = getattr(op, "mean", None)
    var = getattr(op, "variance", None)
    if mean is None or var is None:
        return None
    m = np.asarray(mean, dtype=np.float64).ravel()
    s = np.sqrt(np.maximum(np.asarray(var, dtype=np.float64).ravel(), 0.0))
    return float((m - 2 * s).min()), float((m + 2 * s).max())


def _evidence(tensor: Any, consumers: dict[int, list[Any]]) -> tuple[str, Any] | None:
    """The first consumer (through transparent layers) that says what the input is."""
    frontier, seen = [tensor], set()
    for _ in range(_MAX_HOPS):
        nxt = []
        for t in frontier:
            for op, node in consumers.get(id(t), []):
                if id(op) in seen:
                    continue
                seen.add(id(op))
                kind = type(op).__name__
                vocab = _vocab(op)
                if vocab is not None:
                    return "vocab", vocab
                if kind == "Rescaling":
                    return "range", _scale_range(op)
                if kind == "Normalization":
                    return "range", _normalization_range(op)
                if kind in _TRANSPARENT:
                    nxt.extend(getattr(node, "output_tensors", []))
        frontier = nxt
    return None


def describe_inputs(model: Any, named: list[tuple[str, Any]]) -> list[TensorSpec]:
    """One TensorSpec per input with the role and range its consumers imply."""
    consumers = _consumers(model)
    vocabs = [v for v in (_vocab(op) for op in getattr(model, "operations", [])) if v]
    specs = []
    for name, t in named:
        dtype = str(t.dtype)
        kind = np.dtype(dtype).kind if dtype != "string" else "U"
        found = _evidence(t, consumers)
        role, int_range, value_range = None, None, None
        lname = name.lower()
        if kind in "iub":
            if found and found[0] == "vocab":
                role = "segments" if "segment" in lname or "type" in lname else "tokens"
                int_range = (0, int(found[1]))
            elif "mask" in lname:
                role, int_range = "mask", (0, 2)
            else:
                int_range = (0, int(min(vocabs))) if vocabs else (0, 10)
        elif kind == "f" and found and found[0] == "range" and found[1] is not None:
            role, value_range = "scaled", found[1]
        specs.append(TensorSpec(name, tuple(t.shape), dtype, int_range, role, value_range))
    return specs


def declared_length(model: Any, layers: list[Any]) -> int | None:
    """The longest sequence the model declares (a backbone's ``max_sequence_length``, a
    position embedding's ``sequence_length``): check lengths must not exceed it."""
    found: list[int] = []
    try:
        cfg = model.get_config() or {}
    except Exception:  # noqa: BLE001 - subclassed models may not implement get_config
        cfg = {}
    found += [cfg[k] for k in _LENGTH_KEYS if isinstance(cfg.get(k), int)]
    for layer in layers:
        if "PositionEmbedding" in type(layer).__name__:
            n = getattr(layer, "sequence_length", None)
            if isinstance(n, int):
                found.append(n)
    return min(found) if found else None
