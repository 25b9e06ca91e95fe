"""A float64 twin of a Keras model: the ground truth float artifacts are judged against.

Float32 rounding is not the same everywhere: Keras, LiteRT and ONNX Runtime order their
arithmetic differently, and on ill-conditioned inputs (a model fed values far outside its
range) each lands far from the exact result, Keras included. The same model computed in
float64 shows how far each one is from what the model computes, so an artifact can be held
to "no worse than Keras float32 itself" instead of to a fixed number of digits.

``keras.config.set_floatx("float64")`` alone does not make a twin: every layer's config
carries its own dtype policy. The twin is the model's config with every float dtype
(policies and input dtypes) rewritten to float64, rebuilt with ``from_config`` and given the
model's weights cast to float64. Imported only inside the TensorFlow worker.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np

_FLOAT_NAMES = {"float16", "bfloat16", "float32", "mixed_float16", "mixed_bfloat16"}


class TwinUnavailable(Exception):
    """No float64 twin can be built for this model; the message says why."""


def _to_float64(cfg: Any) -> Any:
    """Rewrite every float dtype (policy dicts, policy names, input dtypes) in a config."""
    if isinstance(cfg, dict):
        out = {}
        for k, v in cfg.items():
            if k == "dtype" and isinstance(v, str) and v in _FLOAT_NAMES:
                out[k] = "float64"
            elif k == "dtype" and isinstance(v, dict) and v.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
                name = v.get("config", {}).get("name")
                out[k] = _float64_policy(v) if name in _FLOAT_NAMES else v
            elif k == "dtype" and isinstance(v, dict) and "Quantiz" in str(v.get("class_name")):
                raise TwinUnavailable(f"a layer has the quantized dtype policy {v.get('class_name')}")
            else:
                out[k] = _to_float64(v)
        return out
    if isinstance(cfg, list):
        return [_to_float64(v) for v in cfg]
    return cfg


def _float64_policy(policy: dict[str, Any]) -> dict[str, Any]:
    p = copy.deepcopy(policy)
    p["class_name"] = "DTypePolicy"
    p["config"] = {**p.get("config", {}), "name": "float64"}
    return p


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def build_twin(model: Any) -> Any:
    """The float64 twin of ``model``; raises ``TwinUnavailable`` with the reason."""
    import keras

    if not isinstance(model, keras.Model):
        raise TwinUnavailable("the model is a SavedModel signature, with no Keras config to rebuild")
    try:
        cfg = _to_float64(model.get_config())
        twin = model.__class__.from_config(cfg)
    except TwinUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any layer can refuse its own config
        raise TwinUnavailable(f"rebuilding from config failed: {_first_line(exc)}") from None
    weights = model.get_weights()
    twin_vars = twin.weights
    if len(twin_vars) != len(weights):
        raise TwinUnavailable(f"the rebuilt model has {len(twin_vars)} weights, the model {len(weights)}")
    try:
        twin.set_weights([w.astype(np.float64) if w.dtype.kind == "f" else w for w in weights])
    except Exception as exc:  # noqa: BLE001
        raise TwinUnavailable(f"copying the weights failed: {_first_line(exc)}") from None
    kept = sorted({v.path.split("/")[0] for v in twin_vars if "float" in str(v.dtype) and "64" not in str(v.dtype)})
    if kept:
        raise TwinUnavailable(f"layer(s) {', '.join(kept[:3])} keep float32 weights in float64")
    return twin


def twin_outputs(twin: Any, feeds: Mapping[str, np.ndarray], in_names: list[str], out_names: list[str]) -> dict[str, np.ndarray]:
    """The twin's outputs on ``feeds`` (float inputs promoted to float64); refuses a twin
    that silently computed an output in lower precision."""
    from edgekit.models.keras_io import call

    feeds64 = {k: (np.asarray(v, np.float64) if np.asarray(v).dtype.kind == "f" else np.asarray(v))
               for k, v in feeds.items()}
    try:
        out = call(twin, feeds64, in_names, out_names)
    except Exception as exc:  # noqa: BLE001 - a float64 kernel missing on this platform
        raise TwinUnavailable(f"running it failed: {_first_line(exc)}") from None
    low = [k for k, v in out.items() if v.dtype.kind == "f" and v.dtype != np.float64]
    if low:
        raise TwinUnavailable(f"output(s) {low} come out in {out[low[0]].dtype}, not float64")
    return out
