"""Keras side of a run (imported only inside the TensorFlow worker).

Loads a ``ModelSource`` into a Keras model, names its inputs and outputs, calls it by
name, and makes the unrolled copy of recurrent models that TFLite needs.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgekit.errors import ConversionError, InputError, UnsafeModelError
from edgekit.specs import ModelSpec, TensorSpec

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

RNN_CLASSES = {"LSTM", "GRU", "SimpleRNN"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


BUILD_SEED = 0


def load(source: Mapping[str, Any]) -> Any:
    """Load the model a ``ModelSource`` (as dict) names; errors become ``InputError``."""
    import keras

    kind, loc, unsafe = source["kind"], source["location"], source.get("unsafe", False)
    custom: dict[str, Any] = {}
    if source.get("custom_objects"):
        module = _import_file(source["custom_objects"], "custom objects module")
        custom = dict(getattr(module, "CUSTOM_OBJECTS", {}) or {})
    if kind in ("builtin", "builder"):
        # Code-built models start from random weights: the same seed in every process makes
        # them the same model from run to run (golden outputs and caches rely on it).
        keras.utils.set_random_seed(BUILD_SEED)
    if kind == "builtin":
        from edgekit.models.zoo import BUILDERS

        return BUILDERS[loc]()
    if kind == "builder":
        return _load_builder(loc, source["function"])
    if kind == "saved_model":
        from edgekit.savedmodel_scan import check_saved_model

        check_saved_model(loc, unsafe)  # reads the protobuf only: before anything of it runs
        return _load_saved_model(loc)
    try:
        if kind == "keras":
            try:
                return keras.saving.load_model(loc, compile=True, safe_mode=not unsafe, custom_objects=custom)
            except Exception:  # noqa: BLE001 - an unreadable training config is no reason to fail
                return keras.saving.load_model(loc, compile=False, safe_mode=not unsafe, custom_objects=custom)
        # Legacy HDF5 models compiled with string losses fail to deserialize their metrics
        # (see FIELD-NOTES); inference needs no compile state.
        return keras.saving.load_model(loc, compile=False, safe_mode=not unsafe, custom_objects=custom)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for bad files
        from edgekit.models.source import find_custom_classes, read_config
        from edgekit.safeparse import innermost_reason

        msg = innermost_reason(exc)  # Keras' real reason, not its generic wrapper

        custom_classes = find_custom_classes(read_config(loc))
        if custom_classes and not source.get("custom_objects"):
            raise InputError(
                f"{loc} uses custom class(es) {', '.join(custom_classes)} that Keras does not know: "
                "pass --custom-objects module.py defining them"
            ) from None
        if "disallowed" in msg or "not allowed" in msg:  # Keras' own safety refusal: say why
            raise UnsafeModelError(f"{loc}: Keras refused to load it: {msg}") from None
        if "Lambda" in msg or "unsafe" in msg.lower() or "safe_mode" in msg:
            raise UnsafeModelError(f"{loc}: {msg} (pass --unsafe if you trust its author)") from None
        if "Could not locate" in msg or "Unknown layer" in msg or "custom" in msg.lower():
            raise InputError(
                f"{loc} uses a class Keras does not know ({msg}); pass --custom-objects module.py defining it"
            ) from None
        raise InputError(f"could not load {loc}: {msg}") from None


def _import_file(path: str, what: str) -> Any:
    """Import a user's Python file (code the user explicitly named on the command line).

    Keyed by path and content: a long-lived worker imports an edited file afresh."""
    import hashlib

    try:
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None
    name = f"edgekit_user_{abs(hash(path))}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import {what} {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - user code
        del sys.modules[name]
        raise InputError(f"importing {what} {path} failed: {type(exc).__name__}: {_first_line(exc)}") from None
    return module


def _load_builder(path: str, function: str) -> Any:
    import keras

    module = _import_file(path, "builder module")
    fn = getattr(module, function, None)
    if not callable(fn):
        raise InputError(f"{path} has no function {function!r}")
    try:
        model = fn()
    except Exception as exc:  # noqa: BLE001 - user code
        raise InputError(f"{path}:{function}() failed: {type(exc).__name__}: {_first_line(exc)}") from None
    if not isinstance(model, keras.Model):
        raise InputError(f"{path}:{function}() returned {type(model).__name__}, not a Keras model")
    return model


class SavedModelSignature:
    """A SavedModel's ``serving_default`` signature, callable like a Keras model.

    A SavedModel holds no Keras architecture; this adapter lets the SavedModel, TFLite and
    ONNX exporters treat it like any model: ``model(inputs_in_order)`` returns a dict of
    named outputs, and ``trackable_root`` is what owns its variables for re-saving.
    """

    def __init__(self, path: str) -> None:
        import tensorflow as tf

        try:
            self.trackable_root = tf.saved_model.load(path)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"could not load SavedModel {path}: {_first_line(exc)}") from None
        sig = getattr(self.trackable_root, "signatures", {}).get("serving_default")
        if sig is None:
            raise InputError(f"SavedModel {path} has no serving_default signature")
        self._sig = sig
        _, kw = sig.structured_input_signature
        self.in_specs = kw
        self.input_names = sorted(kw)
        self.output_names = sorted(sig.structured_outputs)
        self.out_specs = sig.structured_outputs
        self.name = Path(path).name

    @property
    def variables(self) -> list[Any]:
        return list(getattr(self.trackable_root, "variables", []))

    def count_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.variables))

    def __call__(self, x: Any, training: bool = False) -> dict[str, Any]:
        import tensorflow as tf

        xs = x if isinstance(x, (list, tuple)) else [x]
        args = {n: tf.convert_to_tensor(v, dtype=self.in_specs[n].dtype) for n, v in zip(self.input_names, xs)}
        return self._sig(**args)


def _load_saved_model(path: str) -> Any:
    return SavedModelSignature(path)


def _layer_name(t: Any) -> str:
    hist = getattr(t, "_keras_history", None)
    if hist is not None:
        return hist.operation.name
    return t.name


def io_names(model: Any) -> tuple[list[str], list[str]]:
    """Input and output names: the names of the Keras layers that make them, made unique."""
    if isinstance(model, SavedModelSignature):
        return list(model.input_names), list(model.output_names)
    if not getattr(model, "inputs", None):
        raise InputError(
            "the model has no defined inputs (a subclassed model never called on keras.Input): "
            "wrap it in a Functional model or build it with an Input layer"
        )

    def unique(names: list[str]) -> list[str]:
        seen: dict[str, int] = {}
        out = []
        for n in names:
            if n in seen:
                seen[n] += 1
                out.append(f"{n}_{seen[n]}")
            else:
                seen[n] = 0
                out.append(n)
        return out

    return unique([_layer_name(t) for t in model.inputs]), unique([_layer_name(t) for t in model.outputs])


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        inner = getattr(layer, "layer", None) or getattr(layer, "forward_layer", None)
        if inner is not None:
            out.append(inner)
        if hasattr(layer, "layers") and layer is not model:
            out.extend(_all_layers(layer))
    return out


def model_spec(model: Any, source_format: str) -> ModelSpec:
    if isinstance(model, SavedModelSignature):
        return ModelSpec(
            inputs=tuple(TensorSpec(n, tuple(model.in_specs[n].shape), model.in_specs[n].dtype.name,
                                    (0, 10) if model.in_specs[n].dtype.is_integer else None)
                         for n in model.input_names),
            outputs=tuple(TensorSpec(n, tuple(model.out_specs[n].shape), model.out_specs[n].dtype.name)
                          for n in model.output_names),
            source_format=source_format,
            param_count=model.count_params(),
            notes=("input is a SavedModel: no Keras architecture to export as .keras/.h5/weights",),
        )
    in_names, out_names = io_names(model)
    layers = _all_layers(model)
    vocab = [getattr(l, "input_dim", None) for l in layers if type(l).__name__ == "Embedding"]
    vocab = [v for v in vocab if v]
    inputs = []
    for name, t in zip(in_names, model.inputs):
        dtype = str(t.dtype)
        rng = None
        if np.issubdtype(np.dtype(dtype), np.integer):
            rng = (0, int(min(vocab))) if vocab else (0, 10)
        inputs.append(TensorSpec(name, tuple(t.shape), dtype, rng))
    outputs = [TensorSpec(n, tuple(t.shape), str(t.dtype)) for n, t in zip(out_names, model.outputs)]
    has_rnn = any(type(l).__name__ in RNN_CLASSES for l in layers)
    return ModelSpec(
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        source_format=source_format,
        has_rnn=has_rnn,
        layer_count=len(layers),
        param_count=int(model.count_params()),
        layers=tuple(dict.fromkeys(layer.name for layer in layers)),
    )


def _as_list(out: Any, out_names: list[str]) -> list[Any]:
    if isinstance(out, dict):
        if set(out) == set(out_names):
            return [out[n] for n in out_names]
        return [out[k] for k in sorted(out)]
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]


def call_symbolic(model: Any, feeds: Mapping[str, Any], in_names: list[str], out_names: list[str]) -> dict[str, Any]:
    """``model(x, training=False)`` with inputs bound by name; works on tensors and arrays."""
    args = [feeds[n] for n in in_names]
    out = model(args if len(args) > 1 else args[0], training=False)
    return dict(zip(out_names, _as_list(out, out_names)))


def call(model: Any, feeds: Mapping[str, np.ndarray], in_names: list[str] | None = None, out_names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Eager call with inputs bound by name; numpy outputs by name."""
    if in_names is None or out_names is None:
        in_names, out_names = io_names(model)
    return {n: np.asarray(v) for n, v in call_symbolic(model, feeds, in_names, out_names).items()}


def unrolled(model: Any) -> Any:
    """A copy of ``model`` with every LSTM/GRU/SimpleRNN unrolled, same weights.

    TFLite's builtin ops cannot express Keras 3's recurrent loop (TensorList ops need Flex);
    an unrolled graph is builtins-only and keeps a dynamic batch. Needs a fixed sequence length.
    """
    import keras

    for layer in _all_layers(model):
        if type(layer).__name__ in RNN_CLASSES:
            try:
                shape = layer.input.shape
            except Exception:  # noqa: BLE001 - wrapped layers (Bidirectional) have no graph input
                shape = None
            if shape is not None and len(shape) >= 2 and shape[1] is None:
                raise ConversionError(
                    f"{type(layer).__name__} layer '{layer.name}' has a variable sequence length: TFLite builtin ops "
                    "need a fixed one; rebuild the model with a fixed-length Input"
                )

    def fix(cfg: Any) -> None:
        if isinstance(cfg, dict):
            if cfg.get("class_name") in RNN_CLASSES and isinstance(cfg.get("config"), dict):
                cfg["config"]["unroll"] = True
            for v in cfg.values():
                fix(v)
        elif isinstance(cfg, list):
            for v in cfg:
                fix(v)

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if type(layer).__name__ in RNN_CLASSES:
            cfg["unroll"] = True
        fix(cfg)
        return layer.__class__.from_config(cfg)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"could not unroll the recurrent layers for TFLite: {_first_line(exc)}") from None
    return copy
