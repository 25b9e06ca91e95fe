"""Training used by ``edgekit demo`` (runs in the TensorFlow worker)."""
from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from edgekit.worker import report


def train_digits_mlp(path: str, epochs: int = 5, seed: int = 0, batch_size: int = 32) -> dict[str, Any]:
    """Train the guide's MLP on the built-in digits (Adam 1e-3, categorical cross-entropy)
    and save it as ``.keras`` at ``path``. Returns test accuracy and the history."""
    return train_digits(path, "mlp", epochs, seed, batch_size)


def train_digits(path: str, model_name: str = "mlp", epochs: int = 5, seed: int = 0, batch_size: int = 32) -> dict[str, Any]:
    """Train a guide model whose input fits 28x28 digits (``mlp``: 784 values, ``cnn``:
    28x28x1) on the built-in digits and save it as ``.keras`` at ``path``."""
    import keras

    from edgekit.models.digits import load_digits
    from edgekit.models.zoo import BUILDERS

    keras.utils.set_random_seed(seed)
    x_train, y_train, x_test, y_test = load_digits(seed=seed)
    model = BUILDERS[model_name]()
    shape = tuple(model.inputs[0].shape[1:])
    x_train, x_test = x_train.reshape((-1, *shape)), x_test.reshape((-1, *shape))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            report(
                f"epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f} "
                f"accuracy {logs.get('accuracy', float('nan')):.4f} "
                f"val_accuracy {logs.get('val_accuracy', float('nan')):.4f} "
                f"({time.perf_counter() - self.t0:.1f} s)"
            )

    hist = model.fit(
        x_train, keras.utils.to_categorical(y_train, 10), epochs=epochs, batch_size=batch_size,
        validation_split=0.1, verbose=0, callbacks=[Progress()],
    )
    probs = model.predict(x_test, verbose=0)
    acc = float(np.mean(np.argmax(probs, axis=1) == y_test))
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=os.path.dirname(path) or ".")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {
        "test_accuracy": acc,
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
    }


def save_builtin(name: str, path: str, seed: int = 0) -> str:
    """Build a guide model (seeded weights) and save it as ``.keras`` at ``path``."""
    import keras

    from edgekit.models.zoo import BUILDERS

    keras.utils.set_random_seed(seed)
    BUILDERS[name]().save(path)
    return path


def summary(name: str) -> dict[str, Any]:
    """Keras' summary of a guide model (layer table, output shapes, parameter counts)."""
    import keras

    from edgekit.models.zoo import BUILDERS

    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    lines: list[str] = []
    model.summary(print_fn=lambda s, **_: lines.append(s), line_length=96)
    return {"text": "\n".join(lines), "params": int(model.count_params())}
