"""Generative export of keras-hub causal LMs (TensorFlow worker): a decoder that runs on a
device as a prefill over the prompt, then one decode step per token with a KV cache.

keras-hub's ``CausalLM.call_with_cache(token_ids, cache, cache_update_index)`` is the model's
own cached forward pass, and every decoder edgekit knows keeps its cache in one layout:
``[batch, layers, 2 (key, value), length, kv_heads, head_dim]`` (what ``_build_cache``
makes). Both artifacts are built on that function, so they compute what ``generate`` does:

- TFLite: one file, two signatures (the layout LiteRT's generative runtimes use):
  ``prefill(tokens[1, P], input_pos[P], kv_cache_k_i, kv_cache_v_i...)`` -> the caches, and
  ``decode(tokens[1, 1], input_pos[1], caches...)`` -> ``logits[1, 1, V]`` and the caches;
  each cache is ``[1, C, kv_heads, head_dim]`` (C: the cache length). Each signature is
  converted alone with its weights frozen (converting both at once keeps the weights as
  resource variables that nothing initializes: NaN outputs), then the two graphs are merged
  into one file with their identical weights stored once (``converters.tflite_signatures``).
- ONNX: the decoder with past key/values as inputs and outputs, as Optimum and ONNX Runtime
  GenAI lay it out: ``input_ids[batch, seq]``, ``past_key_values.N.key/value`` ``[batch,
  kv_heads, past, head_dim]`` -> ``logits[batch, seq, V]``, ``present.N.key/value``, every
  length open. The past is extended by the new positions and ``call_with_cache`` writes them
  at index ``past``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConversionError, InputError

LAYOUT = "keras-hub [batch, layers, 2, length, kv_heads, head_dim]"
MAX_DEFAULT_CACHE = 1024
MAX_PREFILL = 128
METADATA_KEY = "edgekit.generate"


def as_causal_lm(model: Any, task: str | None = None) -> Any | None:
    """The model as a keras-hub causal LM: itself when it has ``call_with_cache``; with
    ``task="causal-lm"``, a keras-hub backbone wrapped in its CausalLM class; else None."""
    if callable(getattr(model, "call_with_cache", None)):
        return model
    if task != "causal-lm":
        return None
    try:
        import keras_hub
    except ImportError:
        raise InputError("--task causal-lm needs keras-hub: pip install --no-deps keras-hub regex") from None
    tasks = [c for c in _subclasses(keras_hub.models.CausalLM)
             if getattr(c, "backbone_cls", None) is type(model)]
    if not tasks:
        raise InputError(f"--task causal-lm: {type(model).__name__} is no keras-hub backbone with a CausalLM "
                         f"(the model needs call_with_cache)")
    return tasks[0](backbone=model, preprocessor=None)


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def _backbone(lm: Any) -> Any:
    return getattr(lm, "backbone", lm)


def layout(lm: Any, max_cache_length: int | None = None) -> dict[str, Any]:
    """The decoder's cache layout and sizes, or an InputError naming why edgekit does not
    know it. ``max_cache_length``: the cache length asked for (default: the model's
    ``max_sequence_length``, capped at 1024)."""
    import keras

    name = type(lm).__name__
    try:
        _, cache = lm._build_cache(keras.ops.ones((1, 4), dtype="int32"))
    except TypeError as exc:
        raise InputError(f"{name}: edgekit does not know this decoder's cache layout ({_build_cache_sig(lm)}: "
                         f"{str(exc).splitlines()[0][:120]}); known: {LAYOUT}") from None
    shape = tuple(int(d) for d in cache.shape)
    if len(shape) != 6 or shape[0] != 1 or shape[2] != 2 or shape[3] != 4:
        raise InputError(f"{name}: edgekit does not know this decoder's cache layout (cache of shape {shape}); "
                         f"known: {LAYOUT}")
    bb = _backbone(lm)
    vocab = int(getattr(bb, "vocabulary_size", 0) or 0)
    declared = getattr(bb, "max_sequence_length", None)
    cache_len = int(max_cache_length or min(int(declared or MAX_DEFAULT_CACHE), MAX_DEFAULT_CACHE))
    if declared and cache_len > int(declared):
        raise InputError(f"--max-cache-length {cache_len} is longer than the model's max_sequence_length {declared}")
    if cache_len < 2:
        raise InputError(f"--max-cache-length {cache_len}: a cache needs at least 2 positions")
    return {"layout": LAYOUT, "class": name, "layers": shape[1], "kv_heads": shape[4], "head_dim": shape[5],
            "vocab": vocab, "max_sequence_length": int(declared) if declared else None, "cache_length": cache_len,
            "prefill_length": max(1, min(MAX_PREFILL, cache_len // 2)), "dtype": str(cache.dtype)}


def _build_cache_sig(lm: Any) -> str:
    import inspect

    try:
        return f"_build_cache{inspect.signature(lm._build_cache)}"
    except (TypeError, ValueError):
        return "_build_cache"


def _stack_cache(tf: Any, kv: list[Any], layers: int) -> Any:
    """Per-layer ``[b, t, h, d]`` keys and values (k0, v0, k1, v1, ...) as the keras-hub cache."""
    return tf.stack([tf.stack([kv[2 * i], kv[2 * i + 1]], axis=1) for i in range(layers)], axis=1)


def tflite_functions(lm: Any, lay: dict[str, Any]) -> dict[str, Any]:
    """The two signatures' ``tf.function``s (named inputs, dict outputs)."""
    import tensorflow as tf

    L, H, D, C, P = lay["layers"], lay["kv_heads"], lay["head_dim"], lay["cache_length"], lay["prefill_length"]
    kv_specs = [tf.TensorSpec([1, C, H, D], tf.float32, name=f"kv_cache_{kind}_{i}") for i in range(L) for kind in "kv"]

    def build(n: int, with_logits: bool) -> Any:
        def step(tokens: Any, input_pos: Any, *kv: Any) -> dict[str, Any]:
            logits, _, cache = lm.call_with_cache(tokens, _stack_cache(tf, list(kv), L), input_pos[0])
            out = {}
            for i in range(L):
                out[f"kv_cache_k_{i}"] = cache[:, i, 0]
                out[f"kv_cache_v_{i}"] = cache[:, i, 1]
            if with_logits:
                out["logits"] = logits
            return out

        sig = [tf.TensorSpec([1, n], tf.int32, name="tokens"), tf.TensorSpec([n], tf.int32, name="input_pos"), *kv_specs]
        return tf.function(step, input_signature=sig, autograph=False)

    return {"prefill": build(P, False), "decode": build(1, True)}


def export_tflite(lm: Any, dest: str, lay: dict[str, Any]) -> dict[str, Any]:
    """Write the two-signature TFLite decoder to ``dest`` (builtin ops only)."""
    import tensorflow as tf

    from edgekit.converters.tflite import check_builtin_only
    from edgekit.converters.tflite_signatures import merge_signatures
    from edgekit.fsutil import atomic_write_bytes

    parts = []
    for key, fn in tflite_functions(lm, lay).items():
        cf = fn.get_concrete_function()
        conv = tf.lite.TFLiteConverter.from_concrete_functions([cf])  # alone: the weights are frozen
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            buf = conv.convert()
        except Exception as exc:  # noqa: BLE001 - the converter raises many types
            raise ConversionError(f"TFLite conversion of the {key} signature failed: "
                                  f"{(str(exc).splitlines() or [type(exc).__name__])[0][:300]}") from None
        check_builtin_only(buf)
        ins = [t.name for t in tf.nest.flatten(cf.structured_input_signature)]
        parts.append((key, buf, ins, sorted(cf.structured_outputs)))  # a dict's outputs flatten in key order
    merged = merge_signatures(parts, {METADATA_KEY: json.dumps(lay).encode()})
    atomic_write_bytes(Path(dest), merged)
    return {"generative": lay, "signatures": [p[0] for p in parts],
            "signature_sizes": {p[0]: len(p[1]) for p in parts}}


def onnx_function(lm: Any, lay: dict[str, Any]) -> tuple[Any, list[Any], dict[str, str]]:
    """The ONNX decoder's ``tf.function``, its input signature, and the renaming of its
    TensorFlow-safe names to Optimum's dotted ones."""
    import tensorflow as tf

    L, H, D = lay["layers"], lay["kv_heads"], lay["head_dim"]
    sig = [tf.TensorSpec([None, None], tf.int64, name="input_ids")]
    rename = {}
    for i in range(L):
        for kind in ("key", "value"):
            sig.append(tf.TensorSpec([None, H, None, D], tf.float32, name=f"past_key_values_{i}_{kind}"))
            rename[f"past_key_values_{i}_{kind}"] = f"past_key_values.{i}.{kind}"
            rename[f"present_{i}_{kind}"] = f"present.{i}.{kind}"

    def step(input_ids: Any, *past: Any) -> dict[str, Any]:
        batch, n = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
        past_len = tf.shape(past[0])[2]
        new = tf.zeros(tf.stack([batch, n, H, D]), tf.float32)
        kv = [tf.concat([tf.transpose(p, [0, 2, 1, 3]), new], axis=1) for p in past]  # [b, past + n, h, d]
        logits, _, cache = lm.call_with_cache(tf.cast(input_ids, tf.int32), _stack_cache(tf, kv, L), past_len)
        out = {"logits": logits}
        for i in range(L):
            out[f"present_{i}_key"] = tf.transpose(cache[:, i, 0], [0, 2, 1, 3])
            out[f"present_{i}_value"] = tf.transpose(cache[:, i, 1], [0, 2, 1, 3])
        return out

    from edgekit.converters.saved_model import _positional

    names = [s.name for s in sig]
    return tf.function(_positional(step, names), input_signature=sig, autograph=False), sig, rename


def export_onnx(lm: Any, dest: str, lay: dict[str, Any], opset: int) -> dict[str, Any]:
    """Write the ONNX decoder with past/present key-values to ``dest``."""
    import onnx
    import tf2onnx

    from edgekit.converters.onnx import CUSTOM_OP_HANDLERS, name_batch_dim, rename_io
    from edgekit.fsutil import atomic_write_bytes

    fn, sig, rename = onnx_function(lm, lay)
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=sig, opset=opset,
                                                 custom_op_handlers=CUSTOM_OP_HANDLERS)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"ONNX conversion of the decoder failed: "
                              f"{(str(exc).splitlines() or [type(exc).__name__])[0][:300]}") from None
    rename_io(proto, rename)
    name_batch_dim(proto)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(lay)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"ONNX checker rejected the decoder: {str(exc).splitlines()[0][:300]}") from None
    atomic_write_bytes(Path(dest), proto.SerializeToString())
    return {"generative": lay, "opset": opset, "inputs": [i.name for i in proto.graph.input],
            "outputs": [o.name for o in proto.graph.output]}


def keras_reference(lm: Any, prompts: list[list[int]], max_new_tokens: int) -> list[dict[str, Any]]:
    """Keras' own greedy ``generate`` for each prompt, and the logits of a single forward
    pass over the prompt and the generated tokens at every position that predicts one
    (``[steps, V]``): what each decode step must reproduce."""
    import keras
    import keras_hub

    lm.compile(sampler=keras_hub.samplers.GreedySampler())
    out = []
    for prompt in prompts:
        n = len(prompt) + max_new_tokens
        ids = np.zeros((1, n), "int32")
        mask = np.zeros((1, n), bool)
        ids[0, :len(prompt)], mask[0, :len(prompt)] = prompt, True
        gen = lm.generate({"token_ids": ids, "padding_mask": mask}, max_length=n, stop_token_ids=None)
        tokens = [int(t) for t in np.asarray(gen["token_ids"])[0]]
        full = {"token_ids": np.asarray([tokens], "int32"), "padding_mask": np.ones((1, n), "int32")}
        logits = np.asarray(keras.ops.convert_to_numpy(lm(full, training=False)))[0]
        out.append({"prompt": list(prompt), "generated": tokens[len(prompt):],
                    "logits": logits[len(prompt) - 1:n - 1].astype(np.float32)})
    return out
