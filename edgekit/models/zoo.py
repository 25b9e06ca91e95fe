"""The user guide's reference models as named builders.

Each builder takes its sizes as keyword arguments and returns an uncompiled Keras model
with named inputs. ``BUILDERS`` maps the public name to the builder and is importable
without TensorFlow (Keras is imported inside each builder).
"""
from __future__ import annotations

from typing import Any, Callable


def mlp(input_dim: int = 784, hidden: tuple[int, int] = (256, 128), classes: int = 10, dropout: float = 0.2) -> Any:
    """784 -> Dense 256 relu -> Dropout -> Dense 128 relu -> Dropout -> Dense 10 softmax (235,146 params)."""
    import keras

    return keras.Sequential(
        [
            keras.Input((input_dim,), name="pixels"),
            keras.layers.Dense(hidden[0], activation="relu", name="dense_1"),
            keras.layers.Dropout(dropout, name="dropout_1"),
            keras.layers.Dense(hidden[1], activation="relu", name="dense_2"),
            keras.layers.Dropout(dropout, name="dropout_2"),
            keras.layers.Dense(classes, activation="softmax", name="probs"),
        ],
        name="mlp",
    )


def two_input(image_size: int = 224, channels: int = 3, meta_dim: int = 10) -> Any:
    """Image -> Conv2D 32 -> MaxPool -> Flatten; metadata -> Dense 32; concat -> Dense 64 -> Dense 1 sigmoid."""
    import keras

    image = keras.Input((image_size, image_size, channels), name="image")
    meta = keras.Input((meta_dim,), name="meta")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv")(image)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    m = keras.layers.Dense(32, activation="relu", name="meta_dense")(meta)
    h = keras.layers.Concatenate(name="concat")([x, m])
    h = keras.layers.Dense(64, activation="relu", name="joint")(h)
    out = keras.layers.Dense(1, activation="sigmoid", name="score")(h)
    return keras.Model([image, meta], out, name="two_input")


def cnn(input_shape: tuple[int, int, int] = (28, 28, 1), classes: int = 10) -> Any:
    """Conv2D + BatchNormalization + MaxPooling2D + AveragePooling2D + Flatten classifier."""
    import keras

    return keras.Sequential(
        [
            keras.Input(input_shape, name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_1"),
            keras.layers.BatchNormalization(name="bn_1"),
            keras.layers.MaxPooling2D(2, name="max_pool"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_2"),
            keras.layers.BatchNormalization(name="bn_2"),
            keras.layers.AveragePooling2D(2, name="avg_pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(classes, activation="softmax", name="probs"),
        ],
        name="cnn",
    )


def conv1d(seq_len: int = 64, channels: int = 3, classes: int = 4) -> Any:
    """Conv1D sequence classifier."""
    import keras

    return keras.Sequential(
        [
            keras.Input((seq_len, channels), name="signal"),
            keras.layers.Conv1D(16, 5, activation="relu", name="conv_1"),
            keras.layers.MaxPooling1D(2, name="pool_1"),
            keras.layers.Conv1D(32, 3, activation="relu", name="conv_2"),
            keras.layers.GlobalAveragePooling1D(name="gap"),
            keras.layers.Dense(classes, activation="softmax", name="probs"),
        ],
        name="conv1d",
    )


def lstm(seq_len: int = 20, features: int = 8, units: int = 24, outputs: int = 1) -> Any:
    """LSTM sequence model (regression head)."""
    import keras

    return keras.Sequential(
        [
            keras.Input((seq_len, features), name="sequence"),
            keras.layers.LSTM(units, name="lstm"),
            keras.layers.Dense(outputs, name="value"),
        ],
        name="lstm",
    )


def gru(seq_len: int = 20, features: int = 8, units: int = 24, classes: int = 3) -> Any:
    """GRU sequence classifier."""
    import keras

    return keras.Sequential(
        [
            keras.Input((seq_len, features), name="sequence"),
            keras.layers.GRU(units, name="gru"),
            keras.layers.Dense(classes, activation="softmax", name="probs"),
        ],
        name="gru",
    )


def embedding(vocab_size: int = 1000, seq_len: int = 40, dim: int = 16, classes: int = 2) -> Any:
    """Embedding text classifier on integer token ids."""
    import keras

    return keras.Sequential(
        [
            keras.Input((seq_len,), dtype="int32", name="tokens"),
            keras.layers.Embedding(vocab_size, dim, name="embedding"),
            keras.layers.GlobalAveragePooling1D(name="gap"),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(classes, activation="softmax", name="probs"),
        ],
        name="embedding",
    )


BUILDERS: dict[str, Callable[..., Any]] = {
    "mlp": mlp,
    "two_input": two_input,
    "cnn": cnn,
    "conv1d": conv1d,
    "lstm": lstm,
    "gru": gru,
    "embedding": embedding,
}
