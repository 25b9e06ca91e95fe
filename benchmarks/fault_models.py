"""Base models of the fault-injection suite (``module.py:function`` builders for edgekit).

The guide models (edgekit.models.zoo) plus a few architectures the zoo lacks (two inputs of
the same shape, exact GELU, an ill-conditioned CNN, EfficientNetV2-B0), each given
trained-like parameters: fresh Keras layers have zero biases and BatchNormalization
statistics of 0 and 1, on which "bias dropped" or "wrong epsilon" change nothing and no
detector could be measured. Deterministic: edgekit seeds Keras before calling a builder,
and the extra parameters come from a fixed numpy seed.
"""
from __future__ import annotations

from typing import Any


def trained_like(model: Any, seed: int = 7, var_low: float = 0.05) -> Any:
    """Biases ~ N(0, 0.1); BatchNormalization gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2), moving mean
    ~ N(0, 0.5), moving variance ~ U(var_low, 2) (typical of trained networks)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([a.astype("float32") for a in (rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.5, n),
                               rng.uniform(var_low, 2.0, n))])
        elif getattr(layer, "bias", None) is not None and getattr(layer, "use_bias", False):
            k, b = layer.get_weights()[:2]
            layer.set_weights([k, rng.normal(0, 0.1, b.shape).astype("float32")])
    return model


def mlp():
    from edgekit.models.zoo import mlp as build

    return trained_like(build())


def cnn():
    from edgekit.models.zoo import cnn as build

    return trained_like(build())


def two_input():
    from edgekit.models.zoo import two_input as build

    return trained_like(build(image_size=16))


def conv1d():
    from edgekit.models.zoo import conv1d as build

    return trained_like(build())


def embedding():
    from edgekit.models.zoo import embedding as build

    return trained_like(build())


def pair():
    """Two inputs of the same shape (the only kind that can be swapped unnoticed by shape)."""
    import keras

    z = keras.Input((16,), name="z_first")
    a = keras.Input((16,), name="a_second")
    h = keras.layers.Concatenate(name="concat")([keras.layers.Dense(16, activation="relu", name="dz")(z),
                                                 keras.layers.Dense(16, activation="relu", name="da")(a)])
    out = keras.layers.Dense(4, name="out")(keras.layers.Dense(16, activation="tanh", name="joint")(h))
    return trained_like(keras.Model([z, a], out, name="pair"))


def gelu_mlp():
    """Dense layers with exact GELU (the activation of every BERT/ViT-style block)."""
    import keras

    x = keras.Input((32,), name="features")
    h = keras.layers.Dense(64, activation="gelu", name="ff1")(x)
    h = keras.layers.Dense(64, activation="gelu", name="ff2")(h)
    return trained_like(keras.Model(x, keras.layers.Dense(8, name="head")(h), name="gelu_mlp"))


def ill_conditioned():
    """A CNN whose BatchNormalization cancels a 1e4 offset (float32 keeps ~3 digits)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "verdict_builders.py"
    spec = importlib.util.spec_from_file_location("verdict_builders", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.ill_conditioned_cnn()


def efficientnet():
    """EfficientNetV2-B0 (keras.applications, include_preprocessing, logits), 128x128, random
    weights with trained-like BatchNormalization statistics."""
    import keras

    # a named input: an unnamed one is renamed (input_layer_N) each time the model is rebuilt
    m = keras.applications.EfficientNetV2B0(weights=None, include_preprocessing=True, input_shape=(128, 128, 3),
                                            input_tensor=keras.Input((128, 128, 3), name="image"),
                                            classifier_activation=None)
    # Variances down to 0.05 through 80 BatchNormalization layers of random kernels blow the
    # logits up to ~1e8; from 0.5 they stay in the hundreds, like a trained network's.
    return trained_like(m, var_low=0.5)
