"""Training used by ``edgekit demo`` (runs in the TensorFlow worker)."""
from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from edgekit.worker import report


def save_atomically(model: Any, path: str) -> None:
    """``model.save`` to a temporary .keras beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=os.path.dirname(path) or ".")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def train_digits_mlp(path: str, epochs: int = 5, seed: int = 0, batch_size: int = 32) -> dict[str, Any]:
    """Train the guide's MLP on the built-in digits (Adam 1e-3, categorical cross-entropy)
    and save it as ``.keras`` at ``path``. Returns test accuracy and the history."""
    return train_digits(path, "mlp", epochs, seed, batch_size)


def train_digits(path: str, model_name: str = "mlp", epochs: int = 5, seed: int = 0, batch_size: int = 32) -> dict[str, Any]:
    """Train a guide model whose input fits 28x28 digits (``mlp``: 784 values, ``cnn``:
    28x28x1) on the built-in digits with the guide's settings (Adam 1e-3, categorical
    cross-entropy, accuracy) and save it as ``.keras`` at ``path``."""
    from edgekit.models.digits import load_digits
    from edgekit.train import TrainConfig, to_json

    x_train, y_train, x_test, y_test = load_digits(seed=seed)
    cfg = TrainConfig(model=model_name, epochs=epochs, seed=seed, batch_size=batch_size)
    res = train(to_json(cfg), None, x_train, y_train, x_test, y_test, os.path.dirname(path) or ".", model_path=path)
    return {"test_accuracy": res["test"]["accuracy"], "n_train": int(len(x_train)), "n_test": int(len(x_test)),
            "history": res["history"]}


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


def _fit_inputs(model: Any, x: Any) -> Any:
    """Bind inputs by name; flatten or reshape a single input to what the model expects."""
    from edgekit.errors import InputError
    from edgekit.models.keras_io import io_names

    names, _ = io_names(model)
    if isinstance(x, dict):
        missing = [n for n in names if n not in x]
        if missing:
            raise InputError(f"the data has no array for input(s) {missing}; the model's inputs are {names}")
        return [np.asarray(x[n]) for n in names] if len(names) > 1 else np.asarray(x[names[0]])
    if len(names) != 1:
        raise InputError(f"the model has inputs {names}: store the data as an .npz keyed by those names")
    want = tuple(model.inputs[0].shape[1:])
    x = np.asarray(x)
    if x.shape[1:] == want:
        return x
    if None not in want and int(np.prod(x.shape[1:])) == int(np.prod(want)):
        return x.reshape((len(x), *want))  # flatten images for vector models, or the reverse
    raise InputError(f"data of shape {x.shape[1:]} cannot feed the model's input of shape {want}")


REGRESSION_LOSSES = ("mse", "mae", "huber")


def _labels_by_output(out_names: list[str], x: Any, y: Any) -> tuple[Any, Any]:
    """Inputs and labels, the labels keyed by output name for a multi-output model: from
    ``y_<output>`` arrays (already keyed in ``y``) or arrays named after an output (still in
    ``x``). A single ``y`` cannot say which output it is for when there are several."""
    from edgekit.errors import InputError

    labels = dict(y) if isinstance(y, dict) else y
    if isinstance(x, dict):
        named = {k: x[k] for k in x if k in out_names}
        if named:
            if not isinstance(labels, dict):
                raise InputError(f"labels given both as 'y' and by output name {sorted(named)}: use one way")
            labels.update(named)
            x = {k: v for k, v in x.items() if k not in named}
            if list(x) == ["x"]:
                x = x["x"]
    if isinstance(labels, dict):
        unknown = [k for k in labels if k not in out_names]
        missing = [n for n in out_names if n not in labels]
        if unknown or missing:
            raise InputError(f"labels per output: the model's outputs are {out_names}; "
                             f"no labels for {missing}, labels for unknown {unknown} (name them y_<output>)")
        return x, labels if len(out_names) > 1 else labels[out_names[0]]
    if len(out_names) > 1:
        raise InputError(f"the model has outputs {out_names}: give labels per output as y_<output> "
                         "(or an array named after the output), not one 'y'")
    return x, labels


def _losses(loss: str | dict[str, str], out_names: list[str]) -> dict[str, str]:
    from edgekit.errors import InputError

    if isinstance(loss, str):
        return {n: loss for n in out_names}
    unknown = [k for k in loss if k not in out_names]
    missing = [n for n in out_names if n not in loss]
    if unknown or missing:
        raise InputError(f"--loss per output: the model's outputs are {out_names}; "
                         f"no loss for {missing}, a loss for unknown {unknown} (pass --loss OUTPUT=LOSS for each)")
    return dict(loss)


def _fit_labels(model: Any, y: np.ndarray, loss: str, index: int = 0) -> np.ndarray:
    from edgekit.errors import InputError

    out_dim = int(model.outputs[index].shape[-1])
    y = np.asarray(y)
    if loss == "categorical_crossentropy":
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            ints = y.reshape(-1).astype(np.int64)
            if ints.min() < 0 or ints.max() >= out_dim:
                raise InputError(f"labels run {ints.min()}..{ints.max()} but the model has {out_dim} output classes")
            return np.eye(out_dim, dtype=np.float32)[ints]  # integer labels one-hot encoded, as the guide does
        if y.shape[1] != out_dim:
            raise InputError(f"one-hot labels have {y.shape[1]} classes, the model {out_dim}")
        return y.astype(np.float32)
    if loss == "sparse_categorical_crossentropy":
        ints = (np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)).astype(np.int64)
        if ints.min() < 0 or ints.max() >= out_dim:
            raise InputError(f"labels run {ints.min()}..{ints.max()} but the model has {out_dim} output classes")
        return ints
    if loss == "binary_crossentropy":
        if out_dim != 1 and (y.ndim == 1):
            raise InputError(f"binary_crossentropy needs one sigmoid output or one-hot labels; the model has {out_dim} outputs")
        return y.reshape(len(y), -1).astype(np.float32)
    return y.reshape(len(y), -1).astype(np.float32)


def _optimizer(cfg: dict[str, Any]) -> Any:
    import keras

    kw: dict[str, Any] = {"learning_rate": cfg["learning_rate"]}
    if cfg.get("clip_norm") and cfg["loop"] == "fit":
        kw["global_clipnorm"] = cfg["clip_norm"]
    name = cfg["optimizer"]
    if name == "adam":
        return keras.optimizers.Adam(**kw)
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=cfg["weight_decay"], **kw)
    if name == "sgd":
        return keras.optimizers.SGD(momentum=cfg["momentum"], **kw)
    return keras.optimizers.RMSprop(**kw)


def _metrics(cfg: dict[str, Any], loss: str | None = None, multi: bool = False) -> list[Any]:
    """The configured metrics for an output trained with ``loss``. With several outputs, each
    head gets the ones that mean something for it: a regression head its error (mae), a
    classifier head accuracy (and with one-hot labels auc, precision, recall)."""
    import keras

    loss = loss if loss is not None else cfg["loss"]
    names = list(cfg["metrics"])
    if multi and loss in REGRESSION_LOSSES:
        names = [m for m in names if m == "mae"] or ["mae"]
    elif multi and loss == "sparse_categorical_crossentropy":  # integer labels: the others need one-hot
        names = ["accuracy"]
    elif multi:
        names = [m for m in names if m != "mae"] or ["accuracy"]
    out = []
    for m in names:
        if m == "accuracy":
            out.append({"categorical_crossentropy": keras.metrics.CategoricalAccuracy(name="accuracy"),
                        "sparse_categorical_crossentropy": keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                        "binary_crossentropy": keras.metrics.BinaryAccuracy(name="accuracy")}.get(
                            loss, keras.metrics.BinaryAccuracy(name="accuracy")))
        elif m == "mae":
            out.append(keras.metrics.MeanAbsoluteError(name="mae"))
        elif m == "auc":
            out.append(keras.metrics.AUC(name="auc"))
        elif m == "precision":
            out.append(keras.metrics.Precision(name="precision"))
        else:
            out.append(keras.metrics.Recall(name="recall"))
    return out


def _callbacks(cfg: dict[str, Any], out_dir: str, epochs: int) -> list[Any]:
    import keras

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs if logs is not None else {}
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            from edgekit.units import metric_text, metrics_in_percent

            shown = " ".join(f"{k} {metric_text(k, v)}" for k, v in metrics_in_percent(logs).items())
            report(f"epoch {epoch + 1}/{epochs}: {shown} ({time.perf_counter() - self.t0:.1f} s)")

    class StopAtTarget(keras.callbacks.Callback):
        """Stop when a metric reaches a value (down for losses and errors, up otherwise)."""

        def __init__(self, metric: str, value: float) -> None:
            super().__init__()
            self.metric, self.value = metric, value
            self.lower_is_better = any(s in metric for s in ("loss", "mae", "mse"))
            self.stopped_epoch: int | None = None

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            v = (logs or {}).get(self.metric)
            if v is not None and ((v <= self.value) if self.lower_is_better else (v >= self.value)):
                self.model.stop_training = True
                self.stopped_epoch = epoch + 1
                report(f"{self.metric} reached {v:.4g} (target {self.value:g}): stopping")

    cbs: list[Any] = []
    if cfg.get("early_stopping"):
        es = cfg["early_stopping"]
        cbs.append(keras.callbacks.EarlyStopping(monitor=es.get("monitor", "val_loss"), patience=es.get("patience", 3),
                                                 restore_best_weights=es.get("restore_best_weights", True)))
    if cfg.get("reduce_lr"):
        r = cfg["reduce_lr"]
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=r.get("monitor", "val_loss"), factor=r.get("factor", 0.5),
                                                     patience=r.get("patience", 2), min_lr=r.get("min_lr", 1e-6)))
    if cfg.get("checkpoint"):
        c = cfg["checkpoint"]
        cbs.append(keras.callbacks.ModelCheckpoint(os.path.join(out_dir, "best.keras"), monitor=c.get("monitor", "val_loss"),
                                                   save_best_only=c.get("save_best_only", True)))
    if cfg.get("stop_at"):
        cbs.append(StopAtTarget(cfg["stop_at"]["metric"], float(cfg["stop_at"]["value"])))
    cbs.append(Progress())  # last, so the learning rate it records is the one after ReduceLROnPlateau
    return cbs


def train(cfg: dict[str, Any], source: dict[str, Any] | None, x_train: Any, y_train: np.ndarray, x_test: Any,
          y_test: np.ndarray, out_dir: str, model_path: str | None = None) -> dict[str, Any]:
    """Compile and train as the user guide does (``fit`` or a GradientTape loop), evaluate on
    the held-out split, save the model (``out_dir/model.keras`` unless ``model_path``).
    Returns the history and the test metrics."""
    import keras

    from edgekit.models import keras_io
    from edgekit.models.zoo import BUILDERS

    keras.utils.set_random_seed(cfg["seed"])
    model = keras_io.load(source) if source else BUILDERS[cfg["model"]]()
    if not isinstance(model, keras.Model):
        from edgekit.errors import InputError

        raise InputError("a SavedModel holds no Keras architecture to train: train the .keras/.h5 file or a builder")
    xtr, xte, ytr, yte, loss, metrics = _prepared(model, cfg, x_train, y_train, x_test, y_test)
    if isinstance(loss, str):
        cfg = {**cfg, "loss": loss}  # a per-output table naming the one output
    model.compile(optimizer=_optimizer(cfg), loss=loss, metrics=metrics)
    cbs = _callbacks(cfg, out_dir, cfg["epochs"])
    t0 = time.perf_counter()
    if cfg["loop"] == "custom":
        history = _custom_loop(model, cfg, xtr, ytr, cbs)
    else:
        history = model.fit(xtr, ytr, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                            validation_split=cfg["validation_split"], callbacks=cbs, verbose=0).history
    seconds = time.perf_counter() - t0
    n_test = len(next(iter(yte.values()))) if isinstance(yte, dict) else len(yte)
    test = model.evaluate(xte, yte, batch_size=256, verbose=0, return_dict=True) if n_test else {}
    path = model_path or os.path.join(out_dir, "model.keras")
    save_atomically(model, path)
    stop = next((c for c in cbs if hasattr(c, "stopped_epoch") and getattr(c, "stopped_epoch", 0)), None)
    return {
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "epochs_run": len(next(iter(history.values()))) if history else 0,
        "stopped_by": type(stop).__name__ if stop is not None else None,
        "test": {k: float(v) for k, v in test.items()},
        "train_seconds": seconds,
        "model": path,
        "checkpoint": os.path.join(out_dir, "best.keras") if cfg.get("checkpoint") else None,
        "params": int(model.count_params()),
    }


def _prepared(model: Any, cfg: dict[str, Any], x_train: Any, y_train: Any, x_test: Any, y_test: Any) -> tuple[Any, ...]:
    """Inputs, labels, loss and metrics as ``compile``/``fit`` take them: for a model with
    several outputs, labels, losses and metrics keyed by output name (Keras then reports
    ``<output>_<metric>``)."""
    from edgekit.errors import InputError
    from edgekit.models.keras_io import io_names

    _, out_names = io_names(model)
    x_train, y_train = _labels_by_output(out_names, x_train, y_train)
    x_test, y_test = _labels_by_output(out_names, x_test, y_test)
    xtr, xte = _fit_inputs(model, x_train), _fit_inputs(model, x_test)
    losses = _losses(cfg["loss"], out_names)
    if len(out_names) == 1:
        loss = losses[out_names[0]]
        return xtr, xte, _fit_labels(model, y_train, loss), _fit_labels(model, y_test, loss), loss, _metrics(cfg, loss)
    if cfg["loop"] == "custom":
        raise InputError(f"--loop custom trains single-output models; this one has outputs {out_names}: use --loop fit")
    ytr = {n: _fit_labels(model, y_train[n], losses[n], i) for i, n in enumerate(out_names)}
    yte = {n: _fit_labels(model, y_test[n], losses[n], i) for i, n in enumerate(out_names)}
    metrics = {n: _metrics(cfg, losses[n], multi=True) for n in out_names}
    return xtr, xte, ytr, yte, losses, metrics


def _call(model: Any, batch: list[Any], training: bool) -> Any:
    return model(batch if len(batch) > 1 else batch[0], training=training)


def _gradient_step(model: Any, loss_fn: Any, clip: float | None) -> Any:
    """One compiled training step: loss (plus the model's own losses), gradients clipped by
    global norm where asked, applied by the model's optimizer; returns (loss, predictions)."""
    import tensorflow as tf

    opt = model.optimizer

    @tf.function(reduce_retracing=True)
    def step(batch: list[Any], yb: Any) -> Any:
        with tf.GradientTape() as tape:
            pred = _call(model, batch, True)
            loss = tf.reduce_mean(loss_fn(yb, pred)) + tf.add_n(model.losses) if model.losses else tf.reduce_mean(loss_fn(yb, pred))
        grads = tape.gradient(loss, model.trainable_variables)
        if clip:
            grads, _ = tf.clip_by_global_norm(grads, clip)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss, pred

    return step


def _custom_loop(model: Any, cfg: dict[str, Any], x: Any, y: np.ndarray, callbacks: list[Any]) -> dict[str, list[float]]:
    """The guide's custom training loop: an explicit tf.GradientTape step (optional gradient
    clipping by global norm), driving the same Keras callbacks as fit."""
    import keras
    import tensorflow as tf

    xs = x if isinstance(x, list) else [x]
    n = len(y)
    n_val = int(round(n * cfg["validation_split"]))
    order = np.random.default_rng(cfg["seed"]).permutation(n)
    tr, va = order[: n - n_val], order[n - n_val:]
    loss_fn = keras.losses.get(cfg["loss"])
    train_metrics, val_metrics = _metrics(cfg), _metrics(cfg)
    step = _gradient_step(model, loss_fn, cfg.get("clip_norm"))
    cb = keras.callbacks.CallbackList(callbacks, model=model, epochs=cfg["epochs"])
    history: dict[str, list[float]] = {}
    model.stop_training = False
    cb.on_train_begin()
    rng = np.random.default_rng(cfg["seed"] + 1)
    for epoch in range(cfg["epochs"]):
        cb.on_epoch_begin(epoch)
        for m in train_metrics + val_metrics:
            m.reset_state()
        losses = []
        idx = rng.permutation(tr)
        for s in range(0, len(idx), cfg["batch_size"]):
            b = idx[s:s + cfg["batch_size"]]
            loss, pred = step([a[b] for a in xs], y[b])
            losses.append(float(loss))
            for m in train_metrics:
                m.update_state(y[b], pred)
        logs = {"loss": float(np.mean(losses)), **{m.name: float(m.result()) for m in train_metrics}}
        if len(va):
            pred = _call(model, [a[va] for a in xs], False)
            logs["val_loss"] = float(tf.reduce_mean(loss_fn(y[va], pred)))
            for m in val_metrics:
                m.update_state(y[va], pred)
                logs[f"val_{m.name}"] = float(m.result())
        cb.on_epoch_end(epoch, logs)
        for k, v in logs.items():
            history.setdefault(k, []).append(float(v))
        if model.stop_training:
            break
    cb.on_train_end()
    return history
