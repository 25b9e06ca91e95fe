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

        try:
            custom_classes = find_custom_classes(read_config(loc))
        except Exception:  # noqa: BLE001 - the diagnosis must never hide the load error itself
            custom_classes = []
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


def _unique(names: list[str]) -> list[str]:
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


def _named(struct: Any, tensors: list[Any]) -> list[tuple[str, Any]]:
    """(name, tensor) pairs: a dict structure's own keys (keras-hub backbones take and return
    dicts), else the names of the layers that make the tensors."""
    if isinstance(struct, dict) and all(isinstance(k, str) for k in struct):
        return list(struct.items())
    return list(zip(_unique([_layer_name(t) for t in tensors]), tensors))


def io_tensors(model: Any) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """The model's inputs and outputs as (name, symbolic tensor) pairs, in declared order."""
    if not getattr(model, "inputs", None):
        raise InputError(
            "the model has no defined inputs (a subclassed model that was never built): build it with "
            "model.build(shape) or call it once before saving, or pass --shape NAME=D1,D2,..."
        )
    return (_named(getattr(model, "_inputs_struct", None), list(model.inputs)),
            _named(getattr(model, "_outputs_struct", None), list(model.outputs)))


def io_names(model: Any) -> tuple[list[str], list[str]]:
    """Input and output names: dict keys where the model takes or returns a dict, else the
    names of the Keras layers that make them, made unique."""
    if isinstance(model, SavedModelSignature):
        return list(model.input_names), list(model.output_names)
    ins, outs = io_tensors(model)
    return [n for n, _ in ins], [n for n, _ in outs]


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
    from edgekit.models.inputs import describe_inputs, declared_length

    ins, outs = io_tensors(model)
    layers = _all_layers(model)
    inputs = describe_inputs(model, ins)
    outputs = [TensorSpec(n, tuple(t.shape), str(t.dtype), role=output_kind(n, t, inputs)) for n, t in outs]
    has_rnn = any(type(l).__name__ in RNN_CLASSES for l in layers)
    return ModelSpec(
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        source_format=source_format,
        has_rnn=has_rnn,
        layer_count=len(layers),
        param_count=int(model.count_params()),
        layers=tuple(dict.fromkeys(layer.name for layer in layers)),
        max_length=declared_length(model, layers),
        custom_classes=tuple(custom_classes(model, layers)),
        kernel_layers=tuple(dict.fromkeys(layer.name for layer in layers if _owns_matrix(layer))),
    )


def _owns_matrix(layer: Any) -> bool:
    for attr in ("kernel", "depthwise_kernel", "embeddings", "_kernel"):
        try:
            if getattr(layer, attr, None) is not None:
                return True
        except Exception:  # noqa: BLE001 - a property that needs the layer built
            continue
    return False


_FEATURE_NAMES = ("pooled", "embedding", "hidden", "sequence_output", "feature", "encoder", "last_hidden")
_SCORE_ACTIVATIONS = ("linear", "softmax", "sigmoid", "log_softmax")


def output_kind(name: str, tensor: Any, inputs: list[TensorSpec]) -> str | None:
    """How a quantized artifact's output is judged: ``"lm"`` where its last axis is the
    vocabulary of a token input (a language model's next-token logits), ``"features"`` where
    it is a representation rather than class scores (named as one; made by a normalization
    layer or a layer with a non-score activation: BERT's tanh pooler, a backbone's final
    LayerNorm), else None (scores: top-1 agreement on 2-D outputs)."""
    shape = tuple(getattr(tensor, "shape", ()) or ())
    if len(shape) < 2:
        return None
    vocabs = {s.int_range[1] for s in inputs if s.role == "tokens" and s.int_range}
    if shape[-1] is not None and shape[-1] > 2 and shape[-1] in vocabs:
        return "lm"
    if any(k in name.lower() for k in _FEATURE_NAMES):
        return "features"
    history = getattr(tensor, "_keras_history", None)
    layer = getattr(history, "operation", None) if history is not None else None
    if layer is None:
        return None
    if "norm" in type(layer).__name__.lower():
        return "features"
    act = getattr(layer, "activation", None)
    act_name = getattr(act, "__name__", None) or (getattr(act, "name", None) if act is not None else None)
    if isinstance(act_name, str) and act_name not in _SCORE_ACTIVATIONS:
        return "features"
    return None


def custom_classes(model: Any, layers: list[Any]) -> list[str]:
    """``module:Name`` of every class in the model that is not Keras' own (keras-hub's,
    the user's): legacy HDF5 reloads find them only when named."""
    found = []
    for obj in [model, *layers]:
        cls = type(obj)
        if not cls.__module__.startswith("keras.") and cls.__module__ != "keras":
            found.append(f"{cls.__module__}:{cls.__qualname__}")
    return list(dict.fromkeys(found))


def resolve_classes(names: list[str]) -> dict[str, Any]:
    """``{"ViTBackbone": class}`` for ``custom_classes`` names importable in this process."""
    import importlib

    out: dict[str, Any] = {}
    for item in names:
        module, _, qual = item.partition(":")
        try:
            mod = sys.modules.get(module) or importlib.import_module(module)
            obj = mod
            for part in qual.split("."):
                obj = getattr(obj, part)
        except Exception:  # noqa: BLE001 - a class we cannot find is reported by Keras' own error
            continue
        out[qual.rsplit(".", 1)[-1]] = obj
    return out


def _as_list(out: Any, out_names: list[str]) -> list[Any]:
    if isinstance(out, dict):
        if set(out) == set(out_names):
            return [out[n] for n in out_names]
        return [out[k] for k in sorted(out)]
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]


def call_symbolic(model: Any, feeds: Mapping[str, Any], in_names: list[str], out_names: list[str]) -> dict[str, Any]:
    """``model(x, training=False)`` with inputs bound by name; works on tensors and arrays.

    A model that takes a dict is called with a dict keyed by input name (Keras 3 flattens
    a list in sorted-key order, which fails or silently misbinds for other key orders)."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict) and set(struct) == set(in_names):
        arg: Any = {n: feeds[n] for n in in_names}
    else:
        args = [feeds[n] for n in in_names]
        arg = args if len(args) > 1 else args[0]
    out = model(arg, training=False)
    return dict(zip(out_names, _as_list(out, out_names)))


def call(model: Any, feeds: Mapping[str, np.ndarray], in_names: list[str] | None = None, out_names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Eager call with inputs bound by name; numpy outputs by name."""
    if in_names is None or out_names is None:
        in_names, out_names = io_names(model)
    return {n: np.asarray(v) for n, v in call_symbolic(model, feeds, in_names, out_names).items()}


def split_string_preprocessing(model: Any) -> tuple[Any, list[dict[str, Any]], str | None]:
    """A model whose string inputs each feed one ``TextVectorization`` layer, as the numeric
    model after those layers (TFLite and ONNX builtins take no strings) plus each layer's
    settings for ``edgekit.text.TextVectorizer`` (``None`` where it cannot be reproduced)."""
    import keras

    from edgekit.models.inputs import _consumers
    from edgekit.text import TextVectorizer, unsupported

    if isinstance(model, SavedModelSignature) or not getattr(model, "inputs", None):
        return model, [], None
    ins, outs = io_tensors(model)
    if not any(str(t.dtype) == "string" for _, t in ins):
        return model, [], None
    consumers = _consumers(model)
    cut, names, preps, notes = [], [], [], []
    for name, t in ins:
        if str(t.dtype) != "string":
            cut.append(t)
            names.append(name)
            continue
        users = consumers.get(id(t), [])
        if len(users) != 1 or type(users[0][0]).__name__ != "TextVectorization":
            kinds = sorted({type(op).__name__ for op, _ in users}) or ["nothing"]
            raise InputError(
                f"input {name!r} takes strings and feeds {', '.join(kinds)}: edgekit exports the numeric model after "
                "one TextVectorization layer per string input; export the model without its string preprocessing"
            )
        layer, node = users[0]
        cfg = layer.get_config()
        out_t = node.output_tensors[0]
        cut.append(out_t)
        names.append(layer.name)
        bad = unsupported(cfg)
        if bad:
            notes.append(f"{layer.name}: {', '.join(bad)} cannot be reproduced outside TensorFlow; "
                         f"the artifacts take its token ids ({layer.name})")
            preps.append({"input": name, "feeds": layer.name, "unsupported": bad})
            continue
        vec = TextVectorizer(name, layer.name, layer.name, tuple(str(v) for v in layer.get_vocabulary()),
                             cfg.get("standardize"), cfg.get("split"), cfg.get("output_sequence_length"),
                             str(out_t.dtype))
        preps.append(vec.to_json())
    try:
        # outputs keyed by the model's own output names: a nested model would rename them
        tail = keras.Model(cut, {n: t for n, t in outs})
        fresh = [keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=n) for n, t in zip(names, cut)]
        numeric = keras.Model(fresh, tail(fresh if len(fresh) > 1 else fresh[0]), name=model.name)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"could not separate the string preprocessing from the model: {_first_line(exc)}") from None
    note = ("string preprocessing (" + ", ".join(p["feeds"] for p in preps) + ") runs outside the artifacts: "
            "they take token ids; preprocessing.json holds the vocabulary and settings")
    return numeric, preps, "; ".join([note, *notes])


def string_reference(model: Any, texts: Mapping[str, list[str]],
                     others: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The full model (string layers included) on ``texts``, and each TextVectorization
    layer's own token ids for them (to check the numpy tokenizer exactly)."""
    from edgekit.models.inputs import _consumers

    ins, _ = io_tensors(model)
    consumers = _consumers(model)
    feeds: dict[str, Any] = dict(others)
    ids = {}
    for name, t in ins:
        if name in texts:
            arr = np.asarray(texts[name], dtype=object)
            feeds[name] = arr.reshape((-1,) + (1,) * (len(t.shape) - 1))
            layer = consumers[id(t)][0][0]
            ids[layer.name] = np.asarray(layer(feeds[name]))
    return call(model, feeds), ids


def functional_view(model: Any, shapes: Mapping[str, tuple[int, ...]] | None = None) -> tuple[Any, str | None]:
    """A subclassed model as a Functional graph of its ``call`` (every exporter needs named
    symbolic inputs). Its input shape comes from the model's build config, else ``shapes``
    (``--shape``). Returns the model unchanged when it already has Functional inputs."""
    import inspect

    import keras

    if getattr(model, "inputs", None) or isinstance(model, SavedModelSignature):
        return model, None
    try:
        params = [p for p in inspect.signature(model.call).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    name = params[0].name if params else "inputs"
    shape = None
    if shapes and name in shapes:
        shape = tuple(shapes[name])
    elif shapes and len(shapes) == 1:
        given_name, shape = next(iter(shapes.items()))
        name = given_name or name  # a single .npy has no name: call's argument names the input
    else:
        build = (model.get_build_config() or {}) if getattr(model, "built", False) else {}
        given = build.get("input_shape")
        if isinstance(given, (list, tuple)) and given and all(d is None or isinstance(d, int) for d in given):
            shape = tuple(given[1:])
    if shape is None:
        raise InputError(
            f"subclassed model {type(model).__name__} has no recorded input shape: pass --shape {name}=D1,D2,... "
            "(dimensions after the batch)"
        )
    try:
        inp = keras.Input(shape=shape, name=name)
        wrapped = keras.Model(inp, model(inp), name=model.name)
    except Exception as exc:  # noqa: BLE001 - user code
        raise InputError(f"could not trace subclassed model {type(model).__name__} on input {name} "
                         f"{(None, *shape)}: {_first_line(exc)}") from None
    return wrapped, f"subclassed {type(model).__name__} traced on input '{name}' {(None, *shape)}"


def has_variable_rnn(model: Any) -> bool:
    """Whether a recurrent layer sees a variable sequence length (unrolling needs a fixed one)."""
    for layer in _all_layers(model):
        if type(layer).__name__ in RNN_CLASSES:
            try:
                shape = layer.input.shape
            except Exception:  # noqa: BLE001 - wrapped layers (Bidirectional) have no graph input
                shape = None
            if shape is not None and len(shape) >= 2 and shape[1] is None:
                return True
    return False


def unrolled(model: Any, shapes: Mapping[str, tuple[int, ...]] | None = None) -> Any:
    """A copy of ``model`` with every LSTM/GRU/SimpleRNN unrolled, same weights.

    TFLite's builtin ops cannot express Keras 3's recurrent loop (TensorList ops need Flex);
    an unrolled graph is builtins-only and keeps a dynamic batch. It needs a fixed sequence
    length: a model with a variable one is rebuilt on inputs of ``shapes`` (per input name,
    dimensions after the batch).
    """
    import keras

    input_tensors = None
    if has_variable_rnn(model):
        if not shapes:
            raise ConversionError("recurrent layers with a variable sequence length need a fixed length to unroll")
        ins, _ = io_tensors(model)
        input_tensors = [keras.Input(shape=tuple(shapes[n]), dtype=t.dtype, name=n) for n, t in ins]
        if len(input_tensors) == 1:
            input_tensors = input_tensors[0]

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
        copy = keras.models.clone_model(model, input_tensors=input_tensors, clone_function=clone)
        copy.set_weights(model.get_weights())
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"could not unroll the recurrent layers for TFLite: {_first_line(exc)}") from None
    return copy
