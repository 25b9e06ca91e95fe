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
