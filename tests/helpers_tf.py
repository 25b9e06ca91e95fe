"""Fixture builders that run inside the TensorFlow worker (the test process stays light)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path


def make_model_files(out: str) -> dict[str, str]:
    import keras

    from edgekit.models.zoo import cnn, two_input

    d = Path(out)
    m = cnn()
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])  # legacy .h5 + mse is a known trap
    m.save(d / "cnn.keras")
    m.save(d / "cnn.h5")
    m.save_weights(d / "cnn.weights.h5")
    with contextlib.redirect_stdout(io.StringIO()):
        m.export(str(d / "cnn_saved_model"))
    two_input(image_size=16).save(d / "two_input.keras")

    inp = keras.Input((4,), name="x")
    out_ = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(inp)
    keras.Model(inp, keras.layers.Dense(2, name="y")(out_)).save(d / "lambda.keras")
    return {p.name: str(p) for p in d.iterdir()}


def make_flex_tflite(path: str) -> None:
    """A TFLite file that needs Flex ops: a Keras 3 LSTM converted with SELECT_TF_OPS, as
    ``model.export(format="litert")`` silently does."""
    import tensorflow as tf

    from edgekit.converters.saved_model import write_saved_model
    from edgekit.models.keras_io import model_spec
    from edgekit.models.zoo import lstm

    m = lstm(seq_len=5, features=3, units=4)
    sm = str(path) + ".sm"
    write_saved_model(m, model_spec(m, "builtin"), sm)
    conv = tf.lite.TFLiteConverter.from_saved_model(sm)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    conv._experimental_lower_tensor_list_ops = False
    with open(path, "wb") as fh:
        fh.write(conv.convert())


def make_quantized_tflite(name: str, out_dir: str, seed: int = 0) -> dict[str, str]:
    """float32, dynamic-range, float16 and full-int8 (int8 I/O) TFLite files of a guide model,
    made with the raw converter (representative data fed by input name)."""
    import numpy as np
    import tensorflow as tf

    from edgekit.converters.saved_model import write_saved_model
    from edgekit.feeds import random_feeds
    from edgekit.models.keras_io import model_spec
    from edgekit.models.zoo import BUILDERS

    import keras

    keras.utils.set_random_seed(seed)
    model = BUILDERS[name](image_size=16) if name == "two_input" else BUILDERS[name]()
    spec = model_spec(model, "builtin")
    d = Path(out_dir)
    sm = d / f"{name}_sm"
    write_saved_model(model, spec, sm)
    rep = [random_feeds(spec.inputs, batch=1, seed=i) for i in range(50)]

    def conv(configure):
        c = tf.lite.TFLiteConverter.from_saved_model(str(sm))
        configure(c)
        return c.convert()

    def dynamic(c):
        c.optimizations = [tf.lite.Optimize.DEFAULT]

    def fp16(c):
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.target_spec.supported_types = [tf.float16]

    def int8(c):
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = lambda: iter(rep)
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if all(np.dtype(s.dtype).kind == "f" for s in spec.inputs):
            c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8

    out = {}
    for mode, cfg in [("float32", lambda c: None), ("dynamic", dynamic), ("float16", fp16), ("int8", int8)]:
        p = d / f"{name}_{mode}.tflite"
        p.write_bytes(conv(cfg))
        out[mode] = str(p)
    return out


def save_from_builder(module_path: str, function: str, out: str) -> str:
    from edgekit.models.keras_io import _load_builder

    _load_builder(module_path, function).save(out)
    return out


def save_small_models(out: str) -> dict[str, str]:
    """Small user models saved as .keras for training tests: a two-input binary classifier
    and a 4-feature, 3-class Dense model."""
    import keras

    from edgekit.models.zoo import two_input

    d = Path(out)
    keras.utils.set_random_seed(0)
    two_input(image_size=16).save(d / "two_input16.keras")
    x = keras.Input((4,), name="features")
    h = keras.layers.Dense(16, activation="relu")(x)
    keras.Model(x, keras.layers.Dense(3, activation="softmax", name="probs")(h)).save(d / "tabular.keras")
    return {p.name: str(p) for p in d.iterdir()}


def text_model_outputs(zoo_path: str, texts: list[str]):
    """The zoo's string-input model, built as edgekit builds it (same seed), on ``texts``."""
    import keras
    import numpy as np

    from edgekit.models.keras_io import BUILD_SEED, _import_file

    keras.utils.set_random_seed(BUILD_SEED)
    model = _import_file(zoo_path, "builder module").text_classifier()
    return np.asarray(model(np.asarray(texts, dtype=object).reshape(-1, 1)))
