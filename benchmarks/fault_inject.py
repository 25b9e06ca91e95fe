"""Broken copies of a model, one real bug kind each, written by the raw tools (runs inside
edgekit's TensorFlow worker). Each mutation returns a Keras model that computes the bug, or
None where the bug kind does not apply to the architecture; the copy is then exported exactly
like the correct model (``model.export`` + TFLiteConverter, tf2onnx)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tests.helpers_raw import WRITERS

SEED = 11


def _copy(model: Any, clone: Callable[[Any], Any] | None = None) -> Any:
    import keras

    def same(layer: Any) -> Any:
        return layer.__class__.from_config(layer.get_config())

    m = keras.models.clone_model(model, clone_function=clone or same)
    m.set_weights(model.get_weights())
    return m


def _first(model: Any, test: Callable[[Any], bool]) -> Any:
    return next((l for l in model.layers if test(l)), None)


def _has_kernel(layer: Any) -> bool:
    return getattr(layer, "kernel", None) is not None and len(layer.kernel.shape) >= 2


def perturb(eps: float) -> Callable[[Any], Any]:
    """One layer's kernel, every element times (1 + eps * N(0, 1))."""
    def mutate(model: Any) -> Any:
        m = _copy(model)
        layer = _first(m, _has_kernel)
        w = layer.get_weights()
        w[0] = (w[0] * (1 + eps * np.random.default_rng(SEED).standard_normal(w[0].shape))).astype(w[0].dtype)
        layer.set_weights(w)
        return m
    return mutate


def drop_bias(model: Any) -> Any:
    m = _copy(model)
    layer = _first(m, lambda l: getattr(l, "use_bias", False) and getattr(l, "bias", None) is not None)
    if layer is None:
        return None
    w = layer.get_weights()
    w[1] = np.zeros_like(w[1])
    layer.set_weights(w)
    return m


def swap_inputs(model: Any) -> Any:
    """The file's inputs keep their names but feed each other's branch."""
    import keras

    ins = model.inputs
    if len(ins) != 2 or tuple(ins[0].shape) != tuple(ins[1].shape) or ins[0].dtype != ins[1].dtype:
        return None
    new = [keras.Input(tuple(t.shape[1:]), dtype=t.dtype, name=t.name) for t in (ins[0], ins[1])]
    return keras.Model(new, model([new[1], new[0]]), name="swapped")


def transpose_kernel(model: Any) -> Any:
    """A Conv2D kernel with its spatial axes swapped, a Conv1D kernel flipped (correlation vs
    convolution), or a square Dense kernel transposed: what a layout slip in a weight copy does."""
    m = _copy(model)
    for layer in m.layers:
        if not _has_kernel(layer):
            continue
        w = layer.get_weights()
        k = w[0]
        if k.ndim == 4 and k.shape[0] == k.shape[1] and k.shape[0] > 1:
            w[0] = np.ascontiguousarray(k.transpose(1, 0, 2, 3))
        elif k.ndim == 3 and k.shape[0] > 1:
            w[0] = np.ascontiguousarray(k[::-1])
        elif k.ndim == 2 and k.shape[0] == k.shape[1]:
            w[0] = np.ascontiguousarray(k.T)
        else:
            continue
        layer.set_weights(w)
        return m
    return None


def _reconfigure(model: Any, test: Callable[[Any], bool], change: Callable[[dict], dict]) -> Any:
    """A copy with ``change`` applied to the config of the first layer that passes ``test``."""
    if _first(model, test) is None:
        return None
    done: list[bool] = []

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if not done and test(layer):
            done.append(True)
            cfg = change(cfg)
        return layer.__class__.from_config(cfg)

    return _copy(model, clone)


def bn_epsilon(model: Any) -> Any:
    """BatchNormalization epsilon 1e-5 (PyTorch's default) instead of Keras' 1e-3."""
    import keras

    return _reconfigure(model, lambda l: isinstance(l, keras.layers.BatchNormalization), lambda c: {**c, "epsilon": 1e-5})


def wrong_padding(model: Any) -> Any:
    """A stride-1 'same' convolution padded all on one side (same output shape, shifted)."""
    import keras

    def is_same_conv(l: Any) -> bool:
        return (isinstance(l, (keras.layers.Conv2D, keras.layers.Conv1D)) and l.padding == "same"
                and max(l.kernel_size) > 1 and max(l.strides) == 1)

    target = _first(model, is_same_conv)
    if target is None:
        return None

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if layer is not target:
            return layer.__class__.from_config(cfg)
        pad = [k - 1 for k in layer.kernel_size]
        zp = (keras.layers.ZeroPadding2D(((pad[0], 0), (pad[1], 0))) if len(pad) == 2
              else keras.layers.ZeroPadding1D((pad[0], 0)))
        conv = layer.__class__.from_config({**cfg, "padding": "valid", "name": cfg["name"] + "_valid"})
        return keras.Sequential([zp, conv], name=cfg["name"] + "_padded")

    return _copy(model, clone)


def float16_layer(model: Any) -> Any:
    """One layer's weights stored in float16 (a cast in a weight copy)."""
    m = _copy(model)
    layer = _first(m, _has_kernel)
    layer.set_weights([w.astype(np.float16).astype(w.dtype) if w.dtype.kind == "f" else w for w in layer.get_weights()])
    return m


def gelu_tanh(model: Any) -> Any:
    """Exact GELU replaced by its tanh approximation."""
    import keras

    def is_gelu(l: Any) -> bool:
        return getattr(getattr(l, "activation", None), "__name__", "") == "gelu"

    def change(c: dict) -> dict:
        return {**c, "activation": functools.partial(keras.activations.gelu, approximate=True)}

    return _reconfigure(model, is_gelu, change)


def wrong_output(model: Any) -> Any:
    """The output taken before the last layer's softmax/sigmoid (logits for probabilities)."""
    last = model.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", "")
    if act not in ("softmax", "sigmoid"):
        return None
    return _reconfigure(model, lambda l: l.name == last.name, lambda c: {**c, "activation": "linear"})


MUTATIONS: dict[str, Callable[[Any], Any]] = {
    "weight x(1+1e-3 N)": perturb(1e-3),
    "weight x(1+1e-2 N)": perturb(1e-2),
    "bias dropped": drop_bias,
    "inputs swapped": swap_inputs,
    "kernel transposed": transpose_kernel,
    "BN epsilon 1e-5": bn_epsilon,
    "padding one-sided": wrong_padding,
    "float16 weights (1 layer)": float16_layer,
    "gelu exact -> tanh": gelu_tanh,
    "output from wrong layer": wrong_output,
}


def make_cases(module_path: str, function: str, out_dir: str, formats: list[str]) -> list[dict[str, Any]]:
    """The correct model and every applicable broken copy, written with the raw tools.

    Returns ``{"bug": name or None, "format", "path"}`` rows; an export that fails is a row
    with ``error`` (a bug the tools cannot even write is not counted as a detection)."""
    import keras

    from edgekit.models.keras_io import BUILD_SEED, _load_builder

    keras.utils.set_random_seed(BUILD_SEED)
    model = _load_builder(module_path, function)
    out = Path(out_dir)
    cases: list[dict[str, Any]] = []
    variants: list[tuple[str | None, Any]] = [(None, model)]
    for bug, mutate in MUTATIONS.items():
        broken = mutate(model)
        if broken is not None:
            variants.append((bug, broken))
    for i, (bug, m) in enumerate(variants):
        d = out / (f"bug{i:02d}" if bug else "correct")
        d.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            row: dict[str, Any] = {"bug": bug, "format": fmt, "path": str(d / WRITERS[fmt][1])}
            try:
                WRITERS[fmt][0](m, row["path"])
            except Exception as exc:  # noqa: BLE001 - a raw tool failing is a result to record
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            cases.append(row)
    return cases


def corrupt_zero_point(src: str, dst: str) -> str:
    """An int8 QDQ ONNX file with one weight's zero point off by one quantization step."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(src)
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and len(node.input) > 2 and node.input[2] in inits:
            zp = inits[node.input[2]]
            arr = numpy_helper.to_array(zp)
            if arr.dtype != np.int8 or numpy_helper.to_array(inits[node.input[0]]).ndim < 2:
                continue
            new = numpy_helper.from_array((arr.astype(np.int16) + 1).clip(-128, 127).astype(np.int8), zp.name + "_bug")
            model.graph.initializer.append(new)
            node.input[2] = new.name
            onnx.save(model, dst)
            return dst
    raise ValueError(f"{src} has no int8 weight DequantizeLinear with a zero point")
